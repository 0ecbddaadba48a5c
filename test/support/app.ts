// The real app over real HTTP on a loopback port, on this file's own database.
import { randomBytes } from 'node:crypto';
import { createApp } from '../../src/app.ts';
import type { App } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import type { Config } from '../../src/config.ts';
import { createLogger } from '../../src/platform/log.ts';
import type { Logger } from '../../src/platform/log.ts';
import type { SpendGate } from '../../src/platform/spend.ts';
import { startServer } from '../../src/platform/server.ts';
import type { RunningServer } from '../../src/platform/server.ts';
import { movingClock } from './clock.ts';
import type { TestClock } from './clock.ts';
import { createTestDatabase } from './db.ts';
import type { TestDatabase } from './db.ts';

export interface TestApp {
  app: App;
  server: RunningServer;
  /** http://127.0.0.1:<port> */
  url: string;
  database: TestDatabase;
  /** The app's clock: move it instead of sleeping. */
  clock: TestClock;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Extra environment settings, as an operator would set them. */
  env?: Record<string, string>;
  log?: Logger;
  /** Register extra routes before the app starts serving (tests of the plumbing itself). */
  beforeStart?: (app: App) => void;
  /** Listen on this port instead of an ephemeral one (when PUBLIC_URL must name it). */
  port?: number;
  /** A spend gate standing in for billing's (front door tests). */
  spend?: SpendGate;
  /** The app's clock (default: the wall clock, movable). Date-dependent tests fix it. */
  clock?: TestClock;
}

// One secret per test worker (its files run one after another in one process): an app
// restarted on the same database in a test must decrypt what the first one sealed, as a real
// restart would.
export const TEST_SECRET = randomBytes(32).toString('hex');

export function testConfig(env: Record<string, string> = {}): Config {
  return parseConfig({
    TOLLHOUSE_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    SHUTDOWN_TIMEOUT_SECONDS: '2',
    ...env,
  });
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const handle = await database.open();
  const config = testConfig({ PORT: '1', ...options.env });
  const clock = options.clock ?? movingClock();
  const app = await createApp({
    clock,
    config,
    log: options.log ?? createLogger({ level: 'silent' }),
    database: handle,
    spend: options.spend,
  });
  options.beforeStart?.(app);
  const server = await startServer(app.handler, {
    host: '127.0.0.1',
    port: options.port ?? 0,
    shutdownTimeoutMs: config.http.shutdownTimeoutMs,
    log: app.log,
  });
  return {
    app,
    server,
    url: `http://127.0.0.1:${server.port}`,
    database,
    clock,
    async close() {
      await server.close();
      await app.close();
      await database.destroy();
    },
  };
}
