// The outbox side of outbound events: publishing is one INSERT in the caller's transaction, so
// an event exists exactly when the change it reports committed. A key already stored is
// skipped, which makes "once per crossing" a property of the table rather than of the caller.
import { sql } from 'kysely';
import type { Clock } from '../platform/clock.ts';
import type { AnyExecutor, EventSink, OutboundEvent } from '../platform/events.ts';
import { newId } from '../platform/ids.ts';
import { WEBHOOKS_CHANNEL } from './queries.ts';

export function createOutbox(deps: { clock: Clock }): EventSink {
  return {
    async publish(db: AnyExecutor, events: readonly OutboundEvent[]): Promise<void> {
      if (events.length === 0) return;
      const at = deps.clock();
      const rows = events.map(
        (e) =>
          sql`(${newId('evt')}, ${e.type}, ${e.accountId}, ${e.key}, ${JSON.stringify(e.data)}::jsonb, ${at})`,
      );
      await sql`insert into outbound_events (id, type, account_id, key, data, occurred_at)
        values ${sql.join(rows)}
        on conflict (key) do nothing`.execute(db);
      // Delivered at commit (and dropped with a rollback): wakes every replica's sender.
      await sql`select pg_notify(${WEBHOOKS_CHANNEL}, '')`.execute(db);
    },
  };
}
