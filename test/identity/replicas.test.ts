// Two `tollhouse serve` processes on one PostgreSQL, never restarted: a signing-key rotation
// run from the command line reaches both (JWKS, signing, verification), and an account
// disabled through one is refused by the other — its API key and its access tokens — then
// accepted again once enabled. Both travel by NOTIFY; nothing here waits for a cache to expire.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { CLI_CALLER } from '../../src/keys/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { TEST_SECRET, testConfig } from '../support/app.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';
import type { ServeProcess } from '../support/process.ts';
import { eventually } from '../support/eventually.ts';

// Generous on purpose: no timing threshold, only "eventually, without a restart". NOTIFY takes
// milliseconds; a cache that only expired (5 min for API keys, never for signing keys) would
// not make it.
const WAIT_MS = 15_000;

interface Seed {
  adminKey: string;
  userId: string;
  userKey: string;
  admin: { clientId: string; secret: string };
  user: { clientId: string; secret: string };
}

describe.runIf(onRealPostgres())('two replicas on one PostgreSQL (identity)', () => {
  let database: TestDatabase;
  let settings: Record<string, string>;
  let seed: Seed;
  let a: ServeProcess;
  let b: ServeProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    const ports = [await freePort(), await freePort()] as const;
    settings = {
      DATABASE_URL: database.url as string,
      TOLLHOUSE_SECRET: TEST_SECRET,
      LOG_LEVEL: 'warn',
      // One issuer for both, as behind a load balancer.
      PUBLIC_URL: `http://127.0.0.1:${ports[0]}`,
    };
    // Seed through the real services (migrates too), then leave the database to the replicas.
    const seeder = await createApp({
      config: testConfig(settings),
      log: createLogger({ level: 'silent' }),
    });
    try {
      const admin = await seeder.identity.accounts.create({
        email: 'ops@example.com',
        password: null,
        isAdmin: true,
      });
      const user = await seeder.identity.accounts.create({
        email: 'user@example.com',
        password: null,
      });
      const machine = (ownerAccountId: string) =>
        seeder.identity.apps.create(
          { name: 'Backend', kind: 'machine', ownerAccountId, scopes: ['gateway'] },
          { id: 'test' },
        );
      const adminApp = await machine(admin.id);
      const userApp = await machine(user.id);
      const key = (accountId: string, scopes: Array<'admin' | 'gateway'>) =>
        seeder.keys.service.create(CLI_CALLER, { accountId, kind: 'backend', name: 't', scopes });
      seed = {
        adminKey: (await key(admin.id, ['admin'])).secret,
        userId: user.id,
        userKey: (await key(user.id, ['gateway'])).secret,
        admin: { clientId: adminApp.app.clientId, secret: adminApp.clientSecret! },
        user: { clientId: userApp.app.clientId, secret: userApp.clientSecret! },
      };
    } finally {
      await seeder.close();
    }
    a = serve(ports[0], settings);
    b = serve(ports[1], settings);
    await Promise.all([waitReady(a), waitReady(b)]);
  });

  afterAll(async () => {
    for (const replica of [a, b]) replica?.child.kill('SIGTERM');
    await Promise.all([a, b].map((r) => r?.exited));
    await database?.destroy();
  });

  async function token(replica: ServeProcess, client: { clientId: string; secret: string }) {
    const response = await fetch(`${replica.url}/oidc/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials&scope=gateway',
    });
    const body = (await response.json()) as { access_token?: string };
    return { status: response.status, token: body.access_token ?? null };
  }

  async function verify(replica: ServeProcess, credential: string) {
    const response = await fetch(`${replica.url}/v1/auth/verify`, {
      headers: { authorization: `Bearer ${credential}` },
    });
    await response.arrayBuffer();
    return response.status;
  }

  async function jwksKids(replica: ServeProcess) {
    const response = await fetch(`${replica.url}/oidc/jwks`);
    return ((await response.json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
  }

  const kidOf = (jwt: string) =>
    (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

  /** Polls `check` (shared helper), failing with both replicas' output after WAIT_MS. */
  async function until(check: () => Promise<boolean>, what: string) {
    await eventually(check, { timeoutMs: WAIT_MS, what }).catch((error: Error) => {
      throw new Error(`${error.message}\nA:\n${a.output()}\nB:\n${b.output()}`);
    });
  }

  async function rotate() {
    const result = await runCli(['identity', 'rotate-keys'], settings);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { active_kid: string; next_kid: string };
  }

  it('a key rotation from the CLI reaches both replicas: they publish, sign with and accept the new keys', async () => {
    const before = await token(a, seed.admin);
    expect(before.status).toBe(200);
    const oldToken = before.token!;
    const startKids = await jwksKids(b);
    expect(startKids).toContain(kidOf(oldToken));
    const pids = [a.child.pid, b.child.pid];

    // First rotation: the published next key signs.
    const first = await rotate();
    expect(startKids).toContain(first.active_kid);
    // Second rotation: the key that signs now did not exist when the replicas started, so
    // verifying it proves both reloaded (JWKS, signer and the verifier of the authenticator).
    const second = await rotate();
    expect(startKids).not.toContain(second.active_kid);

    for (const replica of [a, b]) {
      await until(async () => {
        const kids = await jwksKids(replica);
        const issued = await token(replica, seed.admin);
        return (
          kids.includes(second.active_kid) &&
          kids.includes(second.next_kid) &&
          issued.token !== null &&
          kidOf(issued.token) === second.active_kid
        );
      }, `${replica.url} publishes and signs with the rotated keys`);
    }
    const fromA = (await token(a, seed.admin)).token!;
    const fromB = (await token(b, seed.admin)).token!;
    expect(kidOf(fromA)).toBe(second.active_kid);
    expect(await verify(b, fromA)).toBe(200);
    expect(await verify(a, fromB)).toBe(200);
    // A retired key stays published (and accepted) until its tokens have expired.
    expect(await jwksKids(b)).toContain(kidOf(oldToken));
    expect(await verify(b, oldToken)).toBe(200);
    // Same processes throughout.
    expect([a.child.pid, b.child.pid]).toEqual(pids);
    expect([a.child.exitCode, b.child.exitCode]).toEqual([null, null]);
  });

  it('an account disabled through one replica has its API key and tokens refused by the other, and back once enabled from the CLI', async () => {
    const issued = await token(a, seed.user);
    expect(issued.status).toBe(200);
    const jwt = issued.token!;
    // B has verified (and cached) the key and the app.
    expect(await verify(b, seed.userKey)).toBe(200);
    expect(await verify(b, jwt)).toBe(200);
    expect((await token(b, seed.user)).status).toBe(200);

    const disabled = await fetch(`${a.url}/v1/accounts/${seed.userId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${seed.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'disabled' }),
    });
    expect(disabled.status).toBe(200);
    await until(
      async () =>
        (await verify(b, seed.userKey)) === 401 &&
        (await verify(b, jwt)) === 401 &&
        (await token(b, seed.user)).status === 401,
      'B refuses the disabled account’s key, token and app',
    );
    // The other accounts are unaffected.
    expect(await verify(b, seed.adminKey)).toBe(200);

    const enabled = await runCli(['accounts', 'enable', 'user@example.com'], settings);
    expect(enabled.code, enabled.stderr).toBe(0);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ id: seed.userId, status: 'active' });
    for (const replica of [a, b]) {
      await until(
        async () =>
          (await verify(replica, seed.userKey)) === 200 && (await verify(replica, jwt)) === 200,
        `${replica.url} accepts the enabled account again`,
      );
    }
  });
});
