// The verifier on its own, over a real database whose queries are counted: proves which
// checks cost a round trip and which do not.
import { sql } from 'kysely';
import type { KyselyPlugin, PluginTransformQueryArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDirectory } from '../../src/identity/index.ts';
import { CLI_CALLER, createKeyService, createKeyVerifier, mintKey } from '../../src/keys/index.ts';
import type { KeyVerifier } from '../../src/keys/index.ts';
import { migrateToLatest } from '../../src/platform/migrations.ts';
import type { DatabaseHandle } from '../../src/database.ts';
import type { AppError } from '../../src/platform/errors.ts';
import { createLogger } from '../../src/platform/log.ts';
import { createSecrets } from '../../src/platform/secrets.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { eventually } from '../support/eventually.ts';
import { createAccount } from '../support/fixtures.ts';

const secrets = createSecrets('x'.repeat(64));
let database: TestDatabase;
let handle: DatabaseHandle;
let queries = 0;
let verifier: KeyVerifier;
let service: ReturnType<typeof createKeyService>;
let accountId: string;

const counter: KyselyPlugin = {
  transformQuery(args: PluginTransformQueryArgs) {
    queries++;
    return args.node;
  },
  async transformResult(args) {
    return args.result;
  },
};

beforeAll(async () => {
  database = await createTestDatabase();
  handle = await database.open();
  await migrateToLatest(handle.db);
  accountId = await createAccount(handle.db, { email: 'c@example.com' });
  service = createKeyService({ db: handle.db, secrets, directory: createDirectory(handle.db) });
  verifier = createKeyVerifier({
    db: handle.db.withPlugin(counter),
    listen: handle.listen,
    secrets,
    log: createLogger({ level: 'silent' }),
    cacheMax: 3,
    lastUsedFlushMs: 60_000,
  });
  await verifier.start();
});
afterAll(async () => {
  await verifier.close();
  await database.destroy();
});

async function refusal(credential: string, origin: string | null = null) {
  try {
    await verifier.verify(credential, { origin });
  } catch (error) {
    return error as AppError;
  }
  throw new Error('expected a refusal');
}

describe('the key verifier', () => {
  it('refuses a bad checksum or a malformed key without a database query', async () => {
    const { secret } = mintKey('backend');
    const before = queries;
    for (const candidate of [
      secret.slice(0, -1) + (secret.endsWith('a') ? 'b' : 'a'),
      secret.slice(0, -2),
      'th_sk_short',
      `th_${'x'.repeat(10_000)}`,
    ]) {
      const error = await refusal(candidate);
      expect(error.status).toBe(401);
      expect(error.message).toBe('Invalid API key');
    }
    expect(queries).toBe(before);
    // The same key with its checksum intact does reach the database: the count is live.
    await refusal(secret);
    expect(queries).toBe(before + 1);
  });

  it('remembers unknown keys briefly (bounded negative cache)', async () => {
    const { secret } = mintKey('browser');
    const before = queries;
    await refusal(secret);
    await refusal(secret);
    expect(queries).toBe(before + 1);
    expect(verifier.cacheSize().negative).toBeGreaterThan(0);
  });

  it('answers null for credentials that are not API keys, so the next verifier is asked', async () => {
    const before = queries;
    expect(await verifier.verify('eyJhbGciOiJFUzI1NiJ9.e30.sig', { origin: null })).toBeNull();
    expect(queries).toBe(before);
  });

  it('queries once per key, then serves it from memory until it changes', async () => {
    const { key, secret } = await service.create(CLI_CALLER, {
      accountId,
      kind: 'backend',
      name: 'hot',
    });
    const before = queries;
    const principal = await verifier.verify(secret, { origin: null });
    expect(principal).toMatchObject({
      via: 'api_key',
      accountId,
      keyId: key.id,
      scopes: ['gateway'],
    });
    for (let i = 0; i < 50; i++) await verifier.verify(secret, { origin: null });
    expect(queries).toBe(before + 1);
    await service.revoke(CLI_CALLER, key.id);
    // The NOTIFY is delivered asynchronously; once it is, the key is looked up again.
    await eventually(async () => (await statusOf(secret)) === 401);
    expect(queries).toBe(before + 2);
  });

  it('keeps at most API_KEYS_CACHE_MAX keys', async () => {
    for (let i = 0; i < 5; i++) {
      const { secret } = await service.create(CLI_CALLER, {
        accountId,
        kind: 'backend',
        name: `k${i}`,
      });
      await verifier.verify(secret, { origin: null });
    }
    expect(verifier.cacheSize().positive).toBe(3);
  });

  it('writes last-use times only when flushed', async () => {
    const { key, secret } = await service.create(CLI_CALLER, {
      accountId,
      kind: 'backend',
      name: 'u',
    });
    await verifier.verify(secret, { origin: null });
    expect((await service.show(CLI_CALLER, key.id)).lastUsedAt).toBeNull();
    await verifier.flushLastUsed();
    const used = (await service.show(CLI_CALLER, key.id)).lastUsedAt;
    expect(used).toBeInstanceOf(Date);
  });

  it.runIf(onRealPostgres())(
    'drops every cached key when the LISTEN connection drops, since changes may have been missed',
    async () => {
      const { key, secret } = await service.create(CLI_CALLER, {
        accountId,
        kind: 'backend',
        name: 'l',
      });
      await verifier.verify(secret, { origin: null });
      // A change that sends no NOTIFY (as if it happened while this replica was not listening).
      await sql`update api_keys set revoked_at = now() where id = ${key.id}`.execute(handle.db);
      expect(await verifier.verify(secret, { origin: null })).not.toBeNull();
      await sql`select pg_terminate_backend(pid) from pg_stat_activity
              where application_name = 'tollhouse-listen' and datname = current_database()`.execute(
        handle.db,
      );
      await eventually(async () => (await statusOf(secret)) === 401);
    },
  );
});

/** 200 when the verifier accepts `secret`, else the status of its refusal. */
function statusOf(secret: string): Promise<number> {
  return verifier.verify(secret, { origin: null }).then(
    () => 200,
    (error: AppError) => error.status,
  );
}
