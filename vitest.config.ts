import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Files run in parallel in child processes; each gets its own database (test/support/db.ts).
    pool: 'forks',
    // Most files spend their time waiting (child processes, PostgreSQL, Chromium, anvil), so
    // three files at a time keep two cores busy; Vitest's default on 2 cores is one.
    // TEST_WORKERS overrides it.
    maxWorkers: Number(process.env.TEST_WORKERS ?? 3),
    // Limits for a hung test, not for a slow one: a loaded 2-core machine running three files
    // at once must never hit them in a passing run. Nothing waits for time to pass (the app's
    // clock is injected), so a test that needs these limits is stuck, not slow.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Node runs the sources natively with type stripping; tests do too through Vite.
    server: { deps: { inline: [] } },
  },
});
