// The console's keys page shows what the front door enforces on each key (read-only): the
// plan's or the settings' rate, and an operator's override marked as such.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { CLI_CALLER } from '../../src/keys/index.ts';
import { issueKey } from '../support/credentials.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { signInHttp, startConsoleApp } from './support.ts';

let t: TestApp;

beforeAll(async () => {
  t = await startConsoleApp({ GATEWAY_KEY_RATE: '7', GATEWAY_KEY_CONCURRENCY: '3' });
});
afterAll(async () => {
  await t?.close();
});

describe('console keys page: effective rate limits', () => {
  it('shows the settings for a plain key and the override on an overridden one', async () => {
    const account = await accountWithPassword(t, 'limits@example.com');
    await issueKey(t, account.id, { name: 'plain', scopes: ['gateway'] });
    const special = await issueKey(t, account.id, { name: 'special', scopes: ['gateway'] });
    await t.app.keys.service.setLimits(CLI_CALLER, special.key.id, {
      rate: 100,
      burst: 150,
      concurrency: null,
    });
    const session = await signInHttp(t, 'limits@example.com');
    const response = await fetch(`${t.url}/console/keys`, {
      headers: { cookie: `tollhouse_console=${session.cookie}` },
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('Rate limit');
    expect(text).toContain('7/s (burst 14), 3 at once');
    expect(text).toMatch(
      /100\/s \(burst 150\), 3 at once\s*<span class="badge">set for this key<\/span>/,
    );
  });
});
