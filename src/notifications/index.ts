// Notifications: the outbox other capabilities publish events to (the `EventSink`), customers'
// and operators' webhook endpoints, the sender that delivers every event to them (Standard
// Webhooks, retried with backoff, one in flight per endpoint), and the same alerts by e-mail.
// Other capabilities reach it only through the EventSink port (platform/events.ts).
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Config } from '../config.ts';
import type { DatabaseHandle } from '../database.ts';
import type { Capability } from '../platform/capability.ts';
import type { Clock } from '../platform/clock.ts';
import type { Directory } from '../platform/directory.ts';
import type { EventSink } from '../platform/events.ts';
import type { Logger } from '../platform/log.ts';
import { createBackgroundMail } from '../platform/mail.ts';
import type { Mailer } from '../platform/mail.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { Secrets } from '../platform/secrets.ts';
import { createSender } from './delivery.ts';
import type { Sender } from './delivery.ts';
import { alertMessage, endpointDisabledMessage } from './emails.ts';
import { createAlertEmails } from './alert-emails.ts';
import { createOutbox } from './outbox.ts';
import { WEBHOOKS_CHANNEL, readBacklog } from './queries.ts';
import { alertEmailRoutes, webhookHealthRoutes, webhookRoutes } from './routes.ts';
import { createWebhookService } from './service.ts';
import type { WebhookService } from './service.ts';

export type {
  OutboundEventsTable,
  WebhookDeliveriesTable,
  WebhookEndpointsTable,
} from './table.ts';
export type { WebhookCaller, WebhookService } from './service.ts';
export { RETRY_SCHEDULE_MS, payloadOf } from './delivery.ts';

export interface NotificationsDeps {
  config: Config['notifications'];
  database: DatabaseHandle;
  secrets: Secrets;
  log: Logger;
  metrics: Metrics;
  clock: Clock;
  mailer: Mailer;
  /** Alert addresses of accounts (identity's, through the platform port). */
  directory: Pick<Directory, 'alertAddress'>;
}

export interface Notifications extends Capability {
  /** Where capabilities publish outbound events (inside their own transactions). */
  events: EventSink;
  service: WebhookService;
  /** One sender pass now: fan out, then send what is due (tests move the clock, then call it). */
  deliverDue(): Promise<void>;
  /** Resolves once the alert e-mails handed over so far are sent or have failed. */
  drainMail(): Promise<void>;
  close(): Promise<void>;
}

export function createNotifications(deps: NotificationsDeps): Notifications {
  const { config, database, log, clock, metrics } = deps;
  const db = database.db;
  const policy = {
    allowHttp: config.allowHttp,
    allowPrivateAddresses: config.allowPrivateAddresses,
  };
  const events = createOutbox({ clock });
  const service = createWebhookService({
    db,
    clock,
    policy,
    box: deps.secrets.box('webhook-endpoint-secret'),
  });
  const alertEmails = createAlertEmails({ db, clock });
  const mail = createBackgroundMail(deps.mailer, log);
  const emailContext = { service: new URL(config.publicUrl).host };
  const alertAddress = async (accountId: string | null) =>
    accountId === null ? config.operatorEmail : deps.directory.alertAddress(accountId);

  const attempts = new Counter({
    name: 'tollhouse_webhook_attempts_total',
    help: 'Webhook delivery attempts by result: succeeded, retrying (failed, will retry), failed (retries used up)',
    labelNames: ['result'] as const,
    registers: [metrics.registry],
  });
  const latency = new Histogram({
    name: 'tollhouse_webhook_attempt_duration_seconds',
    help: 'Duration of webhook delivery attempts, to the response or the failure',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60],
    registers: [metrics.registry],
  });
  const backlogGauge = (
    name: string,
    help: string,
    read: (b: Awaited<ReturnType<typeof readBacklog>>) => number,
  ) =>
    new Gauge({
      name,
      help,
      registers: [metrics.registry],
      async collect() {
        try {
          this.set(read(await readBacklog(db)));
        } catch (error) {
          log.warn({ err: error }, 'could not read the webhook backlog');
        }
      },
    });
  backlogGauge(
    'tollhouse_outbox_unfanned_events',
    'Outbound events not yet turned into deliveries',
    (b) => b.unfannedEvents,
  );
  backlogGauge(
    'tollhouse_webhook_pending_deliveries',
    'Webhook deliveries waiting to be sent or retried',
    (b) => b.pendingDeliveries,
  );
  backlogGauge(
    'tollhouse_webhook_oldest_pending_seconds',
    'Age of the oldest pending webhook delivery (0 when none)',
    (b) =>
      b.oldestPendingAt === null
        ? 0
        : Math.max(0, (clock().getTime() - b.oldestPendingAt.getTime()) / 1000),
  );
  backlogGauge(
    'tollhouse_webhook_failing_endpoints',
    'Enabled webhook endpoints whose last attempt failed',
    (b) => b.failingEndpoints,
  );
  backlogGauge(
    'tollhouse_webhook_disabled_endpoints',
    'Webhook endpoints disabled (by their owner or after repeated failure)',
    (b) => b.disabledEndpoints,
  );

  const sender: Sender = createSender({
    db,
    log,
    clock,
    policy,
    timeoutMs: config.timeoutMs,
    disableAfterMs: config.disableAfterMs,
    disableAfterFailures: config.disableAfterFailures,
    secretsOf: (endpoint, at) => service.secretsOf(endpoint, at),
    onFannedOut(fanned) {
      if (!deps.mailer.configured) return;
      for (const event of fanned) {
        void (async () => {
          // The account's owner may have opted out of this type (the deployment's alerts,
          // account null, go to OPERATOR_EMAIL as configured).
          if (event.accountId !== null && !(await alertEmails.wants(event.accountId, event.type)))
            return;
          const to = await alertAddress(event.accountId);
          if (to !== null) mail.deliver(alertMessage(emailContext, to, event));
        })().catch((error: unknown) => log.warn({ err: error }, 'alert e-mail not sent'));
      }
    },
    onDisabled(endpoint) {
      void alertAddress(endpoint.account_id)
        .then((to) => {
          if (to === null) return;
          mail.deliver(
            endpointDisabledMessage(emailContext, to, {
              id: endpoint.id,
              url: endpoint.url,
              reason: endpoint.disabled_reason ?? 'repeated failures',
            }),
          );
        })
        .catch((error: unknown) => log.warn({ err: error }, 'endpoint-disabled e-mail not sent'));
    },
    onAttempt(result, latencyMs) {
      attempts.inc({ result });
      latency.observe(latencyMs / 1000);
    },
  });

  let unlisten: (() => Promise<void>) | null = null;
  let timer: NodeJS.Timeout | null = null;
  const wake = () => {
    void sender.run();
  };

  return {
    name: 'notifications',
    events,
    service,
    deliverDue: () => sender.run(),
    drainMail: () => mail.drain(),
    routes: (router) => {
      webhookRoutes(router, service);
      alertEmailRoutes(router, alertEmails);
      webhookHealthRoutes(router, () => readBacklog(db));
    },
    async start() {
      // LISTEN first, then the first pass: an event committed in between still wakes us.
      unlisten = await database.listen(WEBHOOKS_CHANNEL, wake);
      timer = setInterval(wake, config.pollMs);
      timer.unref();
      wake();
    },
    async close() {
      if (timer !== null) clearInterval(timer);
      await unlisten?.();
      await sender.close();
      await mail.drain();
    },
  };
}
