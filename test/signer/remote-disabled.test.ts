// The remote-signer endpoints of a tollhouse without a keystore or chain: go-livepeer's error
// body with a reason, never a crash; and the configured orchestrator list.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { bearer, call, issueKey } from '../support/credentials.ts';
import { newAccount } from '../support/fixtures.ts';

let t: TestApp;
let secret: string;

beforeAll(async () => {
  t = await startTestApp({
    env: { SIGNER_ORCHESTRATORS: 'https://o1.example:8935, https://o2.example:8935/' },
  });
  secret = (await issueKey(t, await newAccount(t), { scopes: ['signer'] })).secret;
});
afterAll(async () => {
  await t?.close();
});

describe('remote signer without a keystore', () => {
  it('answers 503 with the reason in go-livepeer’s error body', async () => {
    for (const path of ['/sign-orchestrator-info', '/generate-live-payment']) {
      const res = await call(t, 'POST', path, {
        headers: bearer(secret),
        body: { orchestrator: 'AA==' },
      });
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { message: 'The payment signer has no keystore' } });
    }
  });

  it('still refuses unauthenticated callers with 401 first', async () => {
    const res = await call(t, 'POST', '/sign-orchestrator-info');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { message: 'Invalid API key' } });
    expect(res.headers.get('www-authenticate')).toMatch(/Bearer/);
  });

  it('lists the configured orchestrators', async () => {
    const res = await call(t, 'GET', '/discover-orchestrators?caps=a&caps=b', {
      headers: bearer(secret),
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      { address: 'https://o1.example:8935', score: 1, capabilities: [] },
      { address: 'https://o2.example:8935', score: 1, capabilities: [] },
    ]);
  });
});
