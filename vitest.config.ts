import { defineConfig } from 'vitest/config';
import { BaseSequencer } from 'vitest/node';
import type { TestSpecification } from 'vitest/node';

// Files that take a minute or more because they start tollhouse as a child process (serve,
// replicas, kill -9, the keystore's scrypt), slowest first. Vitest orders a fresh checkout (no
// timing cache) by file size, which put some of these last, so one worker ran alone for two
// minutes at the end of each leg. Starting them first keeps the three workers busy to the end.
// The CLI files (identity, keys, billing, metering, cli-errors) run their commands in-process
// now, with two or three child processes each; they follow, as they still start a few.
const SLOW_FIRST = [
  // Three `serve` processes, anvil and a 40 s load with faults: the longest file.
  'test/fleet/soak.test.ts',
  'test/signer/processes.test.ts',
  'test/platform/serve-process.test.ts',
  'test/platform/serve.test.ts',
  'test/signer/keystore.test.ts',
  'test/signer/operations.test.ts',
  'test/platform/control-socket.test.ts',
  'test/console/flows.browser.test.ts',
  'test/platform/cli-errors.test.ts',
  'test/identity/cli.test.ts',
  'test/keys/cli.test.ts',
  'test/billing/cli.test.ts',
  'test/metering/cli.test.ts',
];

class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (spec: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((path) => spec.moduleId.endsWith(path));
      return i === -1 ? SLOW_FIRST.length : i;
    };
    const sorted = await super.sort(files);
    // Array.prototype.sort is stable: the rest keep Vitest's own order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Files run in parallel in child processes; each gets its own database (test/support/db.ts).
    pool: 'forks',
    // A worker process runs one file after another in the same module graph instead of a new
    // process per file: importing the app (oidc-provider, ethers, Stripe, Koa, zod schemas)
    // cost 2–4 s of CPU per file, 40 % of the suite's CPU. The app keeps no module-level state
    // (every capability is built by its factory per app), and each file builds its own apps,
    // databases and servers, so nothing leaks from one file into the next.
    isolate: false,
    // Most files spend their time waiting (child processes, PostgreSQL, Chromium, anvil), so
    // three files at a time keep two cores busy; Vitest's default on 2 cores is one.
    // TEST_WORKERS overrides it.
    maxWorkers: Number(process.env.TEST_WORKERS ?? 3),
    sequence: { sequencer: SlowFirstSequencer },
    // Limits for a hung test, not for a slow one: a loaded 2-core machine running three files
    // at once must never hit them in a passing run. Nothing waits for time to pass (the app's
    // clock is injected), so a test that needs these limits is stuck, not slow.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Node runs the sources natively with type stripping; tests do too through Vite.
    server: { deps: { inline: [] } },
  },
});
