import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Files run in parallel in child processes; each gets its own database (test/support/db.ts).
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Node runs the sources natively with type stripping; tests do too through Vite.
    server: { deps: { inline: [] } },
  },
});
