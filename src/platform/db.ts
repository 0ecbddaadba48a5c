// The database: Kysely over a `pg` pool when DATABASE_URL is set, else embedded PGlite (real
// PostgreSQL compiled to WASM) stored under TOLLHOUSE_DATA_DIR. Both speak the same SQL, so
// every query, migration and test runs unchanged on either.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import type { Dialect, LogEvent } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Logger } from './log.ts';
import { SetupError } from './errors.ts';

export type DatabaseKind = 'postgres' | 'pglite';

/** Called with each NOTIFY payload, or with `null` when notifications may have been missed
 * (the listening connection dropped and came back): drop every cached value then. */
export type NotificationHandler = (payload: string | null) => void;

/** An open database whose tables are `DB` (the application's is `Database` in src/database.ts:
 * platform code knows no capability's tables). */
export interface DatabaseHandle<DB> {
  db: Kysely<DB>;
  kind: DatabaseKind;
  /** LISTEN on `channel`; resolves once listening. The returned function stops listening. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /** PGlite only: the whole cluster as a tarball, for `initialData` (tests' migrated start). */
  snapshot?(): Promise<Blob>;
  close(): Promise<void>;
}

/** Where the database is; src/config.ts fills this from DATABASE_URL and friends. */
export interface DatabaseSettings {
  /** null → embedded PGlite under `dataDir`. */
  readonly url: string | null;
  readonly poolMax: number;
  readonly dataDir: string;
}

export interface DatabaseOptions {
  config: DatabaseSettings;
  log: Logger;
  /** PGlite only: keep the data in memory (tests). */
  inMemory?: boolean;
  /**
   * PGlite in memory only: start from this cluster (a `dumpDataDir()` tarball) instead of
   * running initdb — tests start every file from one migrated snapshot.
   */
  initialData?: Blob;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

// int8 (OID 20) as bigint on both drivers: PGlite already parses it so, pg returns a string.
// count(*) and bigserial columns are int8; money is numeric(78,0), which both return as a
// string for the caller to turn into bigint.
const PG_INT8_OID = 20;

function kyselyLog(log: Logger) {
  if (!log.isLevelEnabled('debug')) return undefined;
  // Parameters are never logged: they carry secrets (key hashes, tokens, passwords).
  return (event: LogEvent) => {
    log.debug(
      { sql: event.query.sql, durationMs: Math.round(event.queryDurationMillis * 100) / 100 },
      event.level === 'error' ? 'query failed' : 'query',
    );
  };
}

export async function openDatabase<DB>(options: DatabaseOptions): Promise<DatabaseHandle<DB>> {
  return options.config.url === null ? openPGlite<DB>(options) : openPostgres<DB>(options);
}

async function openPostgres<DB>({ config, log }: DatabaseOptions): Promise<DatabaseHandle<DB>> {
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === PG_INT8_OID
        ? (value: string) => BigInt(value)
        : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({
    connectionString: config.url ?? undefined,
    max: config.poolMax,
    types,
    // Fail a request quickly instead of queueing forever when the database is unreachable.
    connectionTimeoutMillis: 5_000,
    application_name: 'tollhouse',
  });
  // An idle client losing its connection emits 'error' on the pool; without a listener
  // Node would crash the process. The pool replaces the client on next use.
  // Log the reason only: pg attaches the client (with its connection parameters) to errors.
  pool.on('error', (error: Error & { code?: string }) =>
    log.warn({ error: error.message, code: error.code }, 'idle database connection failed'),
  );
  // pg-pool listens for errors only while a client is idle. A client checked out but between
  // queries — a session advisory lock held across RPC calls (signer funding), a transaction
  // awaiting something else — that loses its connection (PostgreSQL restarted, or
  // pg_terminate_backend) emitted 'error' with no listener and crashed the process (found by
  // the fleet soak, test/fleet/). With this listener its next query fails instead, and the
  // pool drops it when it is released (a client that is not queryable is never reused).
  pool.on('connect', (client) => {
    client.on('error', (error: Error & { code?: string }) =>
      log.debug({ error: error.message, code: error.code }, 'database connection lost'),
    );
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: kyselyLog(log) });
  const listener = createPgListener(config.url as string, types, log);
  return {
    db,
    kind: 'postgres',
    listen: listener.listen,
    async close() {
      await listener.close();
      await db.destroy();
    },
  };
}

/**
 * One dedicated connection per process for LISTEN. If it drops, it reconnects with backoff,
 * re-subscribes, and tells every handler to resynchronise (payload `null`).
 */
function createPgListener(url: string, types: pg.CustomTypesConfig, log: Logger) {
  const handlers = new Map<string, Set<NotificationHandler>>();
  let client: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;

  const connect = (): Promise<pg.Client> => {
    connecting ??= (async () => {
      const next = new pg.Client({
        connectionString: url,
        types,
        application_name: 'tollhouse-listen',
      });
      next.on('notification', (message) => {
        for (const handler of handlers.get(message.channel) ?? []) handler(message.payload ?? '');
      });
      next.on('error', (error: Error & { code?: string }) => {
        log.warn(
          { error: error.message, code: error.code },
          'LISTEN connection lost; reconnecting',
        );
        client = null;
        scheduleReconnect(250);
      });
      await next.connect();
      for (const channel of handlers.keys()) await next.query(`LISTEN ${channel}`);
      client = next;
      return next;
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };

  const scheduleReconnect = (delayMs: number) => {
    if (closed || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect().then(
        () => {
          for (const set of handlers.values()) for (const handler of set) handler(null);
        },
        (error: unknown) => {
          log.warn({ error: (error as Error).message }, 'LISTEN reconnect failed');
          // Back off up to 5 s between attempts: fast enough to keep the 1 s revocation
          // promise once the database is back, slow enough not to hammer it.
          scheduleReconnect(Math.min(delayMs * 2, 5_000));
        },
      );
    }, delayMs);
    retryTimer.unref();
  };

  return {
    async listen(channel: string, handler: NotificationHandler) {
      if (!CHANNEL.test(channel)) throw new Error(`invalid LISTEN channel ${channel}`);
      let set = handlers.get(channel);
      const isNew = set === undefined;
      if (set === undefined) {
        set = new Set();
        handlers.set(channel, set);
      }
      set.add(handler);
      const active = client ?? (await connect());
      if (isNew && active === client) await active.query(`LISTEN ${channel}`);
      return async () => {
        set.delete(handler);
        if (set.size === 0) {
          handlers.delete(channel);
          await client?.query(`UNLISTEN ${channel}`).catch(() => undefined);
        }
      };
    },
    async close() {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      const current = client ?? (connecting ? await connecting.catch(() => null) : null);
      client = null;
      await current?.end().catch(() => undefined);
    },
  };
}

async function openPGlite<DB>({
  config,
  log,
  inMemory,
  initialData,
}: DatabaseOptions): Promise<DatabaseHandle<DB>> {
  let releaseLock = () => {};
  let pglite: PGlite;
  // int8 always as bigint (PGlite otherwise returns a number when the value is small).
  const parsers = { [PG_INT8_OID]: (value: string) => BigInt(value) };
  if (inMemory) {
    pglite = new PGlite({ parsers, loadDataDir: initialData });
  } else {
    const dir = path.join(config.dataDir, 'pglite');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    releaseLock = lockDataDir(config.dataDir);
    log.info({ dataDir: dir }, 'using embedded PGlite database');
    pglite = new PGlite(dir, { parsers });
  }
  try {
    await pglite.waitReady;
  } catch (error) {
    releaseLock();
    throw error;
  }
  const dialect: Dialect = new PGliteDialect(pglite);
  const db = new Kysely<DB>({ dialect, log: kyselyLog(log) });
  return {
    db,
    kind: 'pglite',
    async listen(channel, handler) {
      if (!CHANNEL.test(channel)) throw new Error(`invalid LISTEN channel ${channel}`);
      const unsubscribe = await pglite.listen(channel, (payload) => handler(payload));
      return unsubscribe;
    },
    snapshot: () => pglite.dumpDataDir('none'),
    async close() {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
      // A closed PGlite still holds its WebAssembly instance (hundreds of MB) for as long as
      // anything references the handle. Dropping it frees that memory even then: a process that
      // opens and closes many embedded databases (the command line run in process, the tests)
      // would otherwise grow by one instance per database.
      (pglite as unknown as { mod?: unknown }).mod = undefined;
      releaseLock();
    },
  };
}

/** Thrown when a second process tries to open the same embedded database. */
export class DataDirLocked extends SetupError {}

/**
 * PGlite is single-process: two processes writing one data folder corrupt it. A pid file
 * makes the second one fail with a clear message; a stale file (its process is gone) is
 * taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, 'pglite.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new DataDirLocked(
          `the embedded database in ${dataDir} is in use by process ${owner}; stop it, use another TOLLHOUSE_DATA_DIR, or set DATABASE_URL to share PostgreSQL between processes`,
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new DataDirLocked(`could not lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else — still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
