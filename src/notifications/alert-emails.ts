// Which alert e-mails an account gets: every event type by default, less the ones its owner
// opted out of (GET/PUT /v1/accounts/{id}/alert-emails, the console's "Your account"). Only
// e-mail: webhook endpoints choose their event types themselves.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import { NotFound } from '../platform/errors.ts';
import { EVENT_TYPES } from '../platform/events.ts';
import type { EventType } from '../platform/events.ts';

export interface AlertEmailCaller {
  actor: string;
  requestId: string | null;
}

export type AlertEmails = ReturnType<typeof createAlertEmails>;

export function createAlertEmails(deps: { db: Kysely<Database>; clock: Clock }) {
  const { db, clock } = deps;

  // An operator may name any account: an unknown one is a 404, not a foreign-key 500.
  async function requireAccount(accountId: string) {
    const row = await db
      .selectFrom('accounts')
      .select('id')
      .where('id', '=', accountId)
      .executeTakeFirst();
    if (row === undefined) throw new NotFound(`No account ${accountId}`);
  }

  /** The event types `accountId` opted out of, in EVENT_TYPES order. */
  async function muted(accountId: string): Promise<EventType[]> {
    await requireAccount(accountId);
    const rows = await db
      .selectFrom('alert_email_opt_outs')
      .select('event_type')
      .where('account_id', '=', accountId)
      .execute();
    const set = new Set(rows.map((r) => r.event_type));
    return EVENT_TYPES.filter((t) => set.has(t));
  }

  /** Replaces the account's opt-outs (one transaction, audited). */
  async function setMuted(caller: AlertEmailCaller, accountId: string, types: EventType[]) {
    await requireAccount(accountId);
    const unique = [...new Set(types)];
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('alert_email_opt_outs').where('account_id', '=', accountId).execute();
      if (unique.length > 0) {
        const at = clock();
        await trx
          .insertInto('alert_email_opt_outs')
          .values(unique.map((t) => ({ account_id: accountId, event_type: t, created_at: at })))
          .execute();
      }
      await recordAudit(trx, {
        actor: caller.actor,
        action: 'notifications.alert_emails',
        subject: accountId,
        requestId: caller.requestId,
        details: { muted_event_types: unique },
      });
    });
    return muted(accountId);
  }

  /** Whether the account wants the e-mail for an event of `type` (read at send time). */
  async function wants(accountId: string, type: string): Promise<boolean> {
    const row = await db
      .selectFrom('alert_email_opt_outs')
      .select('event_type')
      .where('account_id', '=', accountId)
      .where('event_type', '=', type)
      .executeTakeFirst();
    return row === undefined;
  }

  return { muted, setMuted, wants };
}
