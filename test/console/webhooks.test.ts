// The console's Webhooks page over real HTTP: add an endpoint (the secret shown once), send a
// test event that a real receiver gets, see it in the delivery log, resend it, disable and
// enable; a forged form and another account's endpoint are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { eventually } from '../support/eventually.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { startReceiver } from '../notifications/receiver.ts';
import type { Receiver } from '../notifications/receiver.ts';
import { post, signInHttp, startConsoleApp } from './support.ts';

let t: TestApp;
let receiver: Receiver;
beforeAll(async () => {
  t = await startConsoleApp({ WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true' });
  receiver = await startReceiver();
});
afterAll(async () => {
  await t?.close();
  await receiver?.close();
});

async function get(cookie: string, path: string) {
  const response = await fetch(`${t.url}${path}`, {
    headers: { cookie: `tollhouse_console=${cookie}` },
    redirect: 'manual',
  });
  return { status: response.status, text: await response.text() };
}

describe('console: webhooks', () => {
  it('adds an endpoint, sends a test event, shows the log, resends, disables and enables', async () => {
    await accountWithPassword(t, 'hooks@example.com');
    const session = await signInHttp(t, 'hooks@example.com');
    const empty = await get(session.cookie, '/console/webhooks');
    expect(empty.status).toBe(200);
    expect(empty.text).toContain('No endpoints yet');

    const refused = await post(t, session, '/console/webhooks', {
      csrf: session.csrf,
      url: 'ftp://nope.example.com',
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('expected an https:// URL');

    const added = await post(t, session, '/console/webhooks', {
      csrf: session.csrf,
      url: receiver.url,
      description: 'orders <service>',
    });
    expect(added.status).toBe(200);
    const secret = /<code id="new-secret">(whsec_[^<]+)<\/code>/.exec(added.text)?.[1];
    expect(secret).toBeDefined();
    expect(added.text).toContain('orders &lt;service&gt;');
    const id = /href="\/console\/webhooks\/(whep_[A-Za-z0-9]+)"/.exec(added.text)?.[1];
    expect(id).toBeDefined();
    // Shown once: the list does not show it again.
    expect((await get(session.cookie, '/console/webhooks')).text).not.toContain(secret!);

    const tested = await post(t, session, `/console/webhooks/${id}/test`, { csrf: session.csrf });
    expect(tested.status).toBe(303);
    expect(tested.location).toBe(`/console/webhooks/${id}?done=tested`);
    await eventually(() => receiver.received.length === 1);
    receiver.verifyAll(secret!);
    const log = await eventually(async () => {
      const page = await get(session.cookie, `/console/webhooks/${id}`);
      return page.text.includes('>succeeded<') && page.text;
    });
    expect(log).toContain('webhook.test');
    const delivery = /deliveries\/(whd_[A-Za-z0-9]+)\/resend/.exec(log)?.[1];
    const resent = await post(t, session, `/console/webhooks/${id}/deliveries/${delivery}/resend`, {
      csrf: session.csrf,
    });
    expect(resent.status).toBe(303);
    await eventually(() => receiver.received.length === 2);
    expect(receiver.received[1]!.id).toBe(receiver.received[0]!.id);

    const disabled = await post(t, session, `/console/webhooks/${id}/disable`, {
      csrf: session.csrf,
    });
    expect(disabled.status).toBe(303);
    expect((await get(session.cookie, `/console/webhooks/${id}`)).text).toContain('>disabled<');
    await post(t, session, `/console/webhooks/${id}/enable`, { csrf: session.csrf });
    expect((await get(session.cookie, `/console/webhooks/${id}`)).text).toContain('>healthy<');

    const forged = await post(t, session, `/console/webhooks/${id}/delete`, { csrf: 'forged' });
    expect(forged.status).toBe(403);

    // Another account's endpoint: not found, and nothing changes.
    await accountWithPassword(t, 'other-hooks@example.com');
    const other = await signInHttp(t, 'other-hooks@example.com');
    expect((await get(other.cookie, `/console/webhooks/${id}`)).status).toBe(404);
    const foreign = await post(t, other, `/console/webhooks/${id}/delete`, { csrf: other.csrf });
    expect(foreign.status).toBe(404);
    expect((await get(session.cookie, `/console/webhooks/${id}`)).status).toBe(200);
  });
});
