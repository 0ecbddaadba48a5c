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
import { ROTATION_DUE_MS, countKeysCreatedBefore } from './queries.ts';
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
}

export interface Keys extends Capability {
  service: KeyService;
  /** The `th_` credential verifier: register it first in the authenticator's list. */
  verifier: KeyVerifier;
  /** CORS for browser keys: before the router, and before the front door (app.ts). */
  cors: Middleware;
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
    },
    async close() {
      origins.close();
      await verifier.close();
    },
  };
}
