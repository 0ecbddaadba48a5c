// Two `tollhouse serve` processes on one PostgreSQL: a token made from an API key (token
// exchange) is refused by both once the key is revoked through one of them, and an app end
// user's token once the app disables that user — pushed by the NOTIFY the change commits with,
// not left to the token's expiry. The time each refusal took is printed.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from '../../src/identity/index.ts';
import { createTestDatabase, onRealPostgres } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { freePort, runCli, serve, waitReady } from '../support/process.ts';
import type { ServeProcess } from '../support/process.ts';
import { eventually } from '../support/eventually.ts';

// Generous on purpose (no timing threshold in tests); the measured figures are printed.
const PROPAGATION_PROMISE_MS = 15_000;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

describe.runIf(onRealPostgres())('derived credentials across two replicas', () => {
  let database: TestDatabase;
  const replicas: ServeProcess[] = [];
  let admin: string;
  let client: { id: string; clientId: string; secret: string };

  const json = (secret: string) => ({
    authorization: `Bearer ${secret}`,
    'content-type': 'application/json',
  });

  beforeAll(async () => {
    database = await createTestDatabase();
    const ports = [await freePort(), await freePort()];
    // One issuer for both replicas, as behind a load balancer.
    const settings = {
      DATABASE_URL: database.url as string,
      TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
      PUBLIC_URL: `http://127.0.0.1:${ports[0]}`,
      LOG_LEVEL: 'warn',
    };
    const migrated = await runCli(['migrate'], settings);
    expect(migrated.code, migrated.stderr).toBe(0);
    for (const port of ports) replicas.push(serve(port, settings));
    await Promise.all(replicas.map((r) => waitReady(r)));
    const created = await runCli(
      ['keys', 'create', '--admin', '--email', 'ops@example.com'],
      settings,
    );
    expect(created.code, created.stderr).toBe(0);
    const issued = JSON.parse(created.stdout) as { secret: string; key: { account_id: string } };
    admin = issued.secret;
    const app = await fetch(`${replicas[0]!.url}/v1/apps`, {
      method: 'POST',
      headers: json(admin),
      body: JSON.stringify({ name: 'Backend', kind: 'machine', scopes: ['gateway'] }),
    });
    expect(app.status).toBe(201);
    const body = (await app.json()) as { id: string; client_id: string; client_secret: string };
    client = { id: body.id, clientId: body.client_id, secret: body.client_secret };
  });
  afterAll(async () => {
    for (const replica of replicas) replica.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    await database?.destroy();
  });

  async function exchange(subjectToken: string, subjectType: string): Promise<string> {
    const response = await fetch(`${replicas[0]!.url}/oidc/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: subjectType,
        scope: 'gateway',
      }),
    });
    const body = (await response.json()) as { access_token?: string };
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body.access_token!;
  }

  async function status(replica: ServeProcess, token: string) {
    const response = await fetch(`${replica.url}/v1/auth/verify`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await response.arrayBuffer();
    return response.status;
  }

  /** Polls until `replica` refuses `token`; the time it took (fails past the promise). */
  async function refusedWithin(replica: ServeProcess, token: string, since: number) {
    await eventually(async () => (await status(replica, token)) === 401, {
      intervalMs: 5,
      timeoutMs: PROPAGATION_PROMISE_MS - (Date.now() - since),
      what: 'the replica to refuse the derived token',
    });
    return Date.now() - since;
  }

  it('a token made from a key is refused by both replicas once the key is revoked', async () => {
    const [a, b] = replicas as [ServeProcess, ServeProcess];
    const parent = await fetch(`${a.url}/v1/keys`, {
      method: 'POST',
      headers: json(admin),
      body: JSON.stringify({ name: 'parent', scopes: ['gateway'] }),
    });
    const { key, secret } = (await parent.json()) as { key: { id: string }; secret: string };
    const token = await exchange(secret, API_KEY_TOKEN_TYPE);
    // Both replicas accept it (and have the key's status cached).
    expect(await status(a, token)).toBe(200);
    expect(await status(b, token)).toBe(200);

    const revoked = await fetch(`${a.url}/v1/keys/${key.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    const since = Date.now();
    expect(revoked.status).toBe(200);
    const onOther = await refusedWithin(b, token, since);
    const onSame = await refusedWithin(a, token, since);
    console.log(
      `derived token refused after key revocation: other replica ${onOther} ms, same replica ${onSame} ms`,
    );
    expect(onOther).not.toBeNull();
    expect(onSame).not.toBeNull();
  });

  it("an app end user's token is refused by both replicas once the app disables the user", async () => {
    const [a, b] = replicas as [ServeProcess, ServeProcess];
    const token = await exchange('customer-7', APP_USER_TOKEN_TYPE);
    expect(await status(a, token)).toBe(200);
    expect(await status(b, token)).toBe(200);
    const disabled = await fetch(`${a.url}/v1/apps/${client.id}/users/customer-7`, {
      method: 'PATCH',
      headers: json(admin),
      body: JSON.stringify({ status: 'disabled' }),
    });
    const since = Date.now();
    expect(disabled.status).toBe(200);
    const onOther = await refusedWithin(b, token, since);
    const onSame = await refusedWithin(a, token, since);
    console.log(
      `app user token refused after the user was disabled: other replica ${onOther} ms, same replica ${onSame} ms`,
    );
    expect(onOther).not.toBeNull();
    expect(onSame).not.toBeNull();
  });
});
