// Every e-mail notifications sends, in one place (as identity's emails.ts): an alert for an
// outbound event, and the notice that an endpoint was disabled. Plain text plus simple HTML
// saying the same; every value escaped. Pure, no I/O.
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import type { MailMessage } from '../platform/mail.ts';
import type { FannedEvent } from './queries.ts';

export interface EmailContext {
  /** What the reader knows the service as: the host of PUBLIC_URL. */
  service: string;
}

const SUMMARIES: Record<string, string> = {
  'spend.threshold_reached': 'Your spending reached a threshold of its cap',
  'balance.low': 'Your prepaid balance is low',
  'balance.depleted': 'Your prepaid balance is used up',
  'balance.recharged': 'Your prepaid balance was recharged',
  'recharge.failed': 'An automatic recharge failed',
  'statement.closed': 'Your monthly statement is ready',
  'key.rotation_due': 'An API key is due for rotation',
  'signer.deposit_low': "The payment signer's deposit is low",
  'signer.reserve_low': "The payment signer's reserve is low",
  'signer.funding_failed': "Funding the payment signer's deposit failed",
};

function page(title: string, body: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title}</title>
      </head>
      <body style="font-family:system-ui,sans-serif;line-height:1.5;color:#18181b">
        ${body}
      </body>
    </html>`.value;
}

/** The facts of the event, one per line, as `name: value` (the payload's own field names). */
function facts(data: Record<string, unknown>): Array<[string, string]> {
  return Object.entries(data)
    .filter(([, v]) => v !== null && typeof v !== 'object')
    .slice(0, 20)
    .map(([k, v]) => [k, String(v)]);
}

export function alertMessage(ctx: EmailContext, to: string, event: FannedEvent): MailMessage {
  const summary = SUMMARIES[event.type] ?? event.type;
  const subject = `${summary} (${ctx.service})`;
  const lines = facts(event.data);
  return {
    to,
    subject,
    text: [
      `${summary}.`,
      '',
      ...lines.map(([k, v]) => `${k}: ${v}`),
      '',
      `Event ${event.id} (${event.type}) at ${event.occurredAt.toISOString()}.`,
      `The same event goes to your webhook endpoints on ${ctx.service}.`,
    ].join('\n'),
    html: page(
      subject,
      html`<p>${summary}.</p>
        <ul>
          ${lines.map(([k, v]) => html`<li><code>${k}</code>: ${v}</li>`)}
        </ul>
        <p>
          Event <code>${event.id}</code> (<code>${event.type}</code>) at
          ${event.occurredAt.toISOString()}.
        </p>`,
    ),
  };
}

export function endpointDisabledMessage(
  ctx: EmailContext,
  to: string,
  endpoint: { id: string; url: string; reason: string },
): MailMessage {
  const subject = `A webhook endpoint was disabled on ${ctx.service}`;
  return {
    to,
    subject,
    text: [
      `The webhook endpoint ${endpoint.url} (${endpoint.id}) was disabled: ${endpoint.reason}.`,
      '',
      'Events are kept: enable the endpoint again (console, or POST /v1/webhooks/endpoints/{id}/enable)',
      'once it answers, and the deliveries still pending are sent.',
    ].join('\n'),
    html: page(
      subject,
      html`<p>
          The webhook endpoint <code>${endpoint.url}</code> (<code>${endpoint.id}</code>) was
          disabled: ${endpoint.reason}.
        </p>
        <p>
          Events are kept: enable the endpoint again (console, or
          <code>POST /v1/webhooks/endpoints/{id}/enable</code>) once it answers, and the deliveries
          still pending are sent.
        </p>`,
    ),
  };
}
