// Webhook endpoints as their owners manage them: an account's own endpoints, or (operators) the
// deployment's. The secret is shown once, when made or rotated; it is stored sealed.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import { Conflict, InvalidRequest, NotFound } from '../platform/errors.ts';
import type { EventType } from '../platform/events.ts';
import { newId } from '../platform/ids.ts';
import type { SecretBox } from '../platform/secrets.ts';
import type { Owner } from '../platform/authz.ts';
import {
  countEndpoints,
  deleteEndpoint,
  findDelivery,
  findEndpoint,
  insertDelivery,
  insertDirectDelivery,
  insertEndpoint,
  listDeliveries,
  listEndpoints,
  notifyWebhooks,
  updateEndpoint,
} from './queries.ts';
import type { DeliveryListRow } from './queries.ts';
import type { WebhookEndpointRow } from './table.ts';
import { checkEndpointUrl } from './urls.ts';
import type { UrlPolicy } from './urls.ts';

/** Who is asking: an account acts on its own endpoints; an operator on any, and the deployment's. */
export interface WebhookCaller {
  actor: string;
  accountId: string;
  operator: boolean;
  requestId: string | null;
}

// Enough for every real integration (Svix's default is 50 per application); a cap keeps one
// account from making the sender fan each event out a million times.
export const MAX_ENDPOINTS = 20;
// A rotated secret keeps signing for this long, so receivers can switch without losing events.
export const ROTATION_OVERLAP_MS = 24 * 3_600_000;
/** Owner of deployment endpoints, as the ownership check sees it: no account owns them. */
const DEPLOYMENT_OWNER = 'deployment';

export interface NewEndpoint {
  /** Undefined: the caller's own account (operators: the deployment). */
  accountId?: string | null;
  allAccounts?: boolean;
  url: string;
  description?: string;
  eventTypes?: readonly EventType[];
}

export interface EndpointPatch {
  url?: string;
  description?: string;
  eventTypes?: readonly EventType[];
  enabled?: boolean;
}

export interface WebhookServiceDeps {
  db: Kysely<Database>;
  clock: Clock;
  policy: UrlPolicy;
  box: SecretBox;
}

export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function createWebhookService(deps: WebhookServiceDeps) {
  const { db, clock, box } = deps;
  const seal = (secret: string, endpointId: string) => box.seal(secret, endpointId);

  async function visible(caller: WebhookCaller, id: string): Promise<WebhookEndpointRow> {
    const row = await findEndpoint(db, id);
    if (row === undefined || (!caller.operator && row.account_id !== caller.accountId)) {
      throw new NotFound(`No webhook endpoint ${id}`);
    }
    return row;
  }

  return {
    /** Who owns endpoint `id` (the route guard's check): deployment endpoints no account. */
    async owner(id: string): Promise<Owner | null> {
      const row = await findEndpoint(db, id);
      if (row === undefined) return null;
      return { accountId: row.account_id ?? DEPLOYMENT_OWNER };
    },

    async create(
      caller: WebhookCaller,
      input: NewEndpoint,
    ): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
      const accountId =
        input.accountId === undefined
          ? caller.operator
            ? null
            : caller.accountId
          : input.accountId;
      if (input.allAccounts === true && (accountId !== null || !caller.operator)) {
        throw new InvalidRequest('body.all_accounts: only for deployment endpoints (operators)');
      }
      const url = checkEndpointUrl(input.url, deps.policy);
      const id = newId('whep');
      const secret = newSecret();
      const at = clock();
      const endpoint = await db.transaction().execute(async (trx) => {
        // Counted under the account's row lock would need identity's table: a per-owner
        // advisory lock keeps two concurrent creates from both passing the cap.
        await sql`select pg_advisory_xact_lock(hashtext(${`webhooks:${accountId ?? '*'}`}))`.execute(
          trx,
        );
        if ((await countEndpoints(trx, accountId)) >= MAX_ENDPOINTS) {
          throw new Conflict(`At most ${MAX_ENDPOINTS} webhook endpoints per account`);
        }
        const row = await insertEndpoint(trx, {
          id,
          accountId,
          allAccounts: input.allAccounts ?? false,
          url,
          description: input.description ?? '',
          eventTypes: input.eventTypes ?? [],
          secretSealed: seal(secret, id),
          at,
        });
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'webhook_endpoint.create',
          subject: id,
          requestId: caller.requestId,
          details: { account_id: accountId, url },
        });
        return row;
      });
      return { endpoint, secret };
    },

    async list(caller: WebhookCaller, accountId?: string | null): Promise<WebhookEndpointRow[]> {
      return listEndpoints(db, caller.operator ? accountId : caller.accountId);
    },

    show: visible,

    async update(
      caller: WebhookCaller,
      id: string,
      patch: EndpointPatch,
    ): Promise<WebhookEndpointRow> {
      await visible(caller, id);
      const at = clock();
      const row = await updateEndpoint(
        db,
        id,
        {
          ...(patch.url === undefined ? {} : { url: checkEndpointUrl(patch.url, deps.policy) }),
          ...(patch.description === undefined ? {} : { description: patch.description }),
          ...(patch.eventTypes === undefined
            ? {}
            : { event_types: JSON.stringify(patch.eventTypes) }),
          ...(patch.enabled === undefined
            ? {}
            : patch.enabled
              ? {
                  enabled: true,
                  disabled_reason: null,
                  consecutive_failures: 0,
                  failing_since: null,
                }
              : { enabled: false, disabled_reason: `disabled by ${caller.actor}` }),
        },
        at,
      );
      if (row === undefined) throw new NotFound(`No webhook endpoint ${id}`);
      if (patch.enabled === true) await notifyWebhooks(db);
      return row;
    },

    async enable(caller: WebhookCaller, id: string): Promise<WebhookEndpointRow> {
      return this.update(caller, id, { enabled: true });
    },

    async remove(caller: WebhookCaller, id: string): Promise<void> {
      await visible(caller, id);
      await db.transaction().execute(async (trx) => {
        if (!(await deleteEndpoint(trx, id))) throw new NotFound(`No webhook endpoint ${id}`);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'webhook_endpoint.delete',
          subject: id,
          requestId: caller.requestId,
        });
      });
    },

    async rotateSecret(
      caller: WebhookCaller,
      id: string,
    ): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
      const current = await visible(caller, id);
      const secret = newSecret();
      const at = clock();
      const endpoint = await db.transaction().execute(async (trx) => {
        const row = await updateEndpoint(
          trx,
          id,
          {
            secret_sealed: seal(secret, id),
            previous_secret_sealed: current.secret_sealed,
            previous_secret_expires_at: new Date(at.getTime() + ROTATION_OVERLAP_MS),
          },
          at,
        );
        if (row === undefined) throw new NotFound(`No webhook endpoint ${id}`);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'webhook_endpoint.rotate_secret',
          subject: id,
          requestId: caller.requestId,
        });
        return row;
      });
      return { endpoint, secret };
    },

    /** The endpoint's signing secrets now: the current one, then the previous while it lasts. */
    secretsOf(endpoint: WebhookEndpointRow, at: Date): string[] {
      const secrets = [box.open(endpoint.secret_sealed, endpoint.id)];
      if (
        endpoint.previous_secret_sealed !== null &&
        endpoint.previous_secret_expires_at !== null &&
        endpoint.previous_secret_expires_at.getTime() > at.getTime()
      ) {
        secrets.push(box.open(endpoint.previous_secret_sealed, endpoint.id));
      }
      return secrets;
    },

    async sendTest(caller: WebhookCaller, id: string): Promise<DeliveryListRow> {
      const endpoint = await visible(caller, id);
      const eventId = newId('evt');
      const at = clock();
      const delivery = await insertDirectDelivery(db, {
        endpointId: endpoint.id,
        event: {
          id: eventId,
          type: 'webhook.test',
          accountId: endpoint.account_id,
          key: `webhook.test:${eventId}`,
          data: { endpoint_id: endpoint.id, message: 'A test event sent from tollhouse' },
        },
        at,
      });
      return { ...delivery, event_type: 'webhook.test' };
    },

    async deliveries(
      caller: WebhookCaller,
      id: string,
      limit: number,
      beforeSeq: string | null,
    ): Promise<DeliveryListRow[]> {
      await visible(caller, id);
      return listDeliveries(db, id, limit, beforeSeq);
    },

    async resend(
      caller: WebhookCaller,
      endpointId: string,
      deliveryId: string,
    ): Promise<DeliveryListRow> {
      await visible(caller, endpointId);
      const original = await findDelivery(db, deliveryId);
      if (original === undefined || original.endpoint_id !== endpointId) {
        throw new NotFound(`No delivery ${deliveryId} of webhook endpoint ${endpointId}`);
      }
      const row = await db.transaction().execute(async (trx) => {
        const inserted = await insertDelivery(trx, endpointId, original.event_id, clock());
        await notifyWebhooks(trx);
        return inserted;
      });
      return { ...row, event_type: original.event_type };
    },
  };
}

export type WebhookService = ReturnType<typeof createWebhookService>;
