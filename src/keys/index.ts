// API keys: backend keys (th_sk_…) and browser keys (th_ck_…, limited to origins and
// resources), their management API and CLI, and the cached verifier every request goes through.
// Other capabilities reach keys only through what is exported here.
import { Gauge } from 'prom-client';
import type { Middleware } from 'koa';
import type { Config } from '../config.ts';
import type { Authenticator } from '../platform/auth.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Capability } from '../platform/capability.ts';
import type { Directory } from '../platform/directory.ts';
import type { Logger } from '../platform/log.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { Secrets } from '../platform/secrets.ts';
import { browserCors, createBrowserOrigins } from './cors.ts';
import { ROTATION_DUE_MS, countKeysCreatedBefore, findKeysCreatedBetween } from './queries.ts';
import type { EventSink } from '../platform/events.ts';
import { keyRoutes } from './routes.ts';
import { createKeyService } from './service.ts';
import type { KeyService } from './service.ts';
import { createKeyVerifier } from './verify.ts';
import type { KeyVerifier } from './verify.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export type { ApiKeysTable } from './table.ts';
export type { ApiKey } from './queries.ts';
export type { KeyKind, MintedKey, ParsedKey } from './format.ts';
export { mintKey, parseKey, normalizeOrigin, KEY_PATTERN } from './format.ts';
export type { ApiKeyView, Caller, IssuedKey, KeyService } from './service.ts';
export { CLI_CALLER, createKeyService } from './service.ts';
export type { KeyVerifier, KeyVerifierDeps } from './verify.ts';
export { KEY_HASH_PURPOSE, createKeyVerifier } from './verify.ts';
export type { AccountDirectory, KeysCliDeps } from './cli.ts';
export { keysCommands } from './cli.ts';
// The front door checks a browser key's resource list with this (it knows the pipeline/model).
export { assertResourceAllowed } from '../platform/auth.ts';

export interface KeysDeps {
  config: Config['keys'];
  database: DatabaseHandle;
  secrets: Secrets;
  log: Logger;
  metrics: Metrics;
  /** Bearer credentials → principal (the management routes of browser keys read it). */
  authenticator: Authenticator;
  /** Accounts and apps (identity's): a key is made for an existing account, bound to its own app. */
  directory: Directory;
  clock?: Clock;
  /** Outbound events (notifications): `key.rotation_due`, once per key. */
  events?: EventSink;
}

// How often each replica looks for keys that became due for rotation, and how far back: a key
// that fell due while every replica was down for up to a week is still announced.
const ROTATION_SCAN_MS = 3_600_000;
const ROTATION_LOOKBACK_MS = 7 * 24 * 3_600_000;

export interface Keys extends Capability {
  service: KeyService;
  /** The `th_` credential verifier: register it first in the authenticator's list. */
  verifier: KeyVerifier;
  /** CORS for browser keys: before the router, and before the front door (app.ts). */
  cors: Middleware;
  /** One scan for keys due for rotation (start() runs it hourly). */
  announceRotationDue(): Promise<void>;
  close(): Promise<void>;
}

export function createKeys(deps: KeysDeps): Keys {
  const { database, secrets, log, metrics } = deps;
  const clock = deps.clock ?? systemClock;
  const origins = createBrowserOrigins(database.db, log, clock);
  const verifier = createKeyVerifier({
    db: database.db,
    listen: database.listen,
    secrets,
    log,
    cacheMax: deps.config.cacheMax,
    lastUsedFlushMs: deps.config.lastUsedFlushMs,
    onChange: () => origins.changed(),
    clock,
  });
  const service = createKeyService({
    db: database.db,
    secrets,
    directory: deps.directory,
    clock,
    onChanged: (id) => verifier.forget(id),
  });
  new Gauge({
    name: 'tollhouse_api_keys_rotation_due',
    help: 'Active API keys older than the recommended 90-day rotation schedule',
    registers: [metrics.registry],
    async collect() {
      try {
        this.set(
          await countKeysCreatedBefore(
            database.db,
            new Date(clock().getTime() - ROTATION_DUE_MS),
            clock(),
          ),
        );
      } catch (error) {
        log.warn({ err: error }, 'could not count API keys due for rotation');
      }
    },
  });
  const cors = browserCors(origins);
  /**
   * Publishes `key.rotation_due` for every active key that reached 90 days in the last week.
   * The event key names the key and its due day, so every replica and every scan may publish
   * it and the outbox keeps one.
   */
  async function announceRotationDue(): Promise<void> {
    const events = deps.events;
    if (events === undefined) return;
    const now = clock();
    const dueBefore = new Date(now.getTime() - ROTATION_DUE_MS);
    const rows = await findKeysCreatedBetween(
      database.db,
      new Date(dueBefore.getTime() - ROTATION_LOOKBACK_MS),
      dueBefore,
      now,
    );
    if (rows.length === 0) return;
    await events.publish(
      database.db,
      rows.map((row) => {
        const due = new Date(row.created_at.getTime() + ROTATION_DUE_MS);
        return {
          type: 'key.rotation_due' as const,
          accountId: row.account_id,
          key: `key.rotation_due:${row.id}:${due.toISOString().slice(0, 10)}`,
          data: {
            key_id: row.id,
            name: row.name,
            created_at: row.created_at.toISOString(),
            rotation_due_at: due.toISOString(),
          },
        };
      }),
    );
  }
  let rotationTimer: NodeJS.Timeout | null = null;
  const scanRotation = (): void => {
    announceRotationDue().catch((error: unknown) =>
      log.warn({ err: error }, 'could not announce API keys due for rotation'),
    );
  };
  return {
    name: 'keys',
    service,
    verifier,
    cors,
    middleware: [cors],
    routes: (router) =>
      keyRoutes(router, {
        keyService: service,
        authenticator: deps.authenticator,
        directory: deps.directory,
      }),
    async start() {
      // LISTEN before the first read, so a change committed in between is not missed.
      await verifier.start();
      await origins.reload();
      scanRotation();
      rotationTimer = setInterval(scanRotation, ROTATION_SCAN_MS);
      rotationTimer.unref();
    },
    announceRotationDue,
    async close() {
      if (rotationTimer !== null) clearInterval(rotationTimer);
      origins.close();
      await verifier.close();
    },
  };
}
