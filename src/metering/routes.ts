// HTTP: POST /v1/usage/events (ingest), GET /v1/usage (totals), GET /v1/usage/events (raw).
import type { z } from 'zod';
import type { Authenticator, AuthState, Principal } from '../platform/auth.ts';
import { hasScope, ruleFailed } from '../platform/auth.ts';
import type { Access, Owner } from '../platform/authz.ts';
import { principalKind } from '../platform/authz.ts';
import { InvalidRequest } from '../platform/errors.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import type { UsageEvent } from './model.ts';
import type { EventCursor, GroupBy, UsageRow } from './queries.ts';
import {
  EARLIEST_EVENT_TIME,
  FUTURE_TOLERANCE_MS,
  INGEST_BODY_LIMIT_BYTES,
  cloudEvent,
  eventsQuery,
  eventsResponse,
  ingestBody,
  ingestResponse,
  parseCloudEventFast,
  summaryQuery,
  summaryResponse,
  toUsageEventView,
} from './schemas.ts';
import type { MeteringService, UsageQuery } from './service.ts';
import type { Clock } from '../platform/clock.ts';

export interface MeteringRouteDeps {
  service: MeteringService;
  authenticator: Authenticator;
  appOwner: (appId: string) => Promise<Owner | null>;
  clock: Clock;
}

// Sources tollhouse writes itself (the front door, the signer): their fees are what the
// spend caps and statements are built on, so only an operator may post under them.
const RESERVED_SOURCE = /^tollhouse(\/|$)/i;

// Usage is read by everyone the usage is about, each narrowed to what is theirs (the
// service's visibleFilter): an account its own, an app's backend its app's users, an app's
// end user their own. A browser key reads nothing.
const usageReader: Access = {
  kinds: ['operator', 'account', 'app_client', 'app_end_user', 'derived'],
  scope: 'usage:read',
  note: "Narrowed to the caller: an account's own events, an app's users', an end user's own",
};

// Usage totals come from hourly rollups; ranges longer than this are refused so one query
// cannot scan years of rollups (ask per year instead).
const MAX_RANGE_MS = 400 * 24 * 3600 * 1000;
const HOUR_MS = 3600 * 1000;

export function meteringRoutes(router: Router, { service, appOwner, clock }: MeteringRouteDeps) {
  /**
   * A whole batch is refused (403, nothing recorded) if one event is not the caller's to
   * write: another account as subject, another account's (or, for an app client, another
   * app's) app id, or a source reserved for tollhouse. Operators write any event.
   */
  async function assertMayWrite(
    principal: Principal,
    events: ReadonlyArray<{ index: number; event: UsageEvent }>,
  ) {
    if (hasScope(principal, 'admin')) return;
    const appClient = principalKind(principal) === 'app_client';
    const owners = new Map<string, Owner | null>();
    for (const { index, event } of events) {
      if (RESERVED_SOURCE.test(event.source)) {
        throw ruleFailed(
          'reserved-source',
          `Event ${index}: the source ${JSON.stringify(event.source)} is reserved for tollhouse itself`,
        );
      }
      if (event.accountId !== principal.accountId) {
        throw ruleFailed(
          'ownership',
          `Event ${index}: a credential writes usage only for its own account (subject ${principal.accountId})`,
        );
      }
      if (appClient) {
        // An app's backend reports for its own app's end users only.
        event.appId ??= principal.appId;
        if (event.appId !== principal.appId) {
          throw ruleFailed('ownership', `Event ${index}: an app writes usage only for its own app`);
        }
      } else if (event.appId !== null) {
        if (!owners.has(event.appId)) owners.set(event.appId, await appOwner(event.appId));
        if (owners.get(event.appId)?.accountId !== principal.accountId) {
          throw ruleFailed('ownership', `Event ${index}: no app ${event.appId} in this account`);
        }
      }
    }
  }

  defineRoute(
    router,
    {
      method: 'post',
      path: '/v1/usage/events',
      access: {
        kinds: ['operator', 'account', 'app_client', 'derived'],
        scope: 'usage:write',
        note: "Each event's subject: the caller's own account (and app: its own); `tollhouse/*` sources: operators only",
      },
      body: ingestBody,
      bodyLimitBytes: INGEST_BODY_LIMIT_BYTES,
      response: ingestResponse,
    },
    async function ingestUsage({ body, ctx }) {
      const now = clock().getTime();
      type Result = {
        id: string | null;
        source: string | null;
        status: 'accepted' | 'duplicate' | 'rejected';
        reason?: string;
      };
      const results: Result[] = [];
      const valid: Array<{ index: number; event: UsageEvent }> = [];
      body.forEach((raw, index) => {
        const ref = raw as { id?: unknown; source?: unknown } | null;
        const id = typeof ref?.id === 'string' ? ref.id : null;
        const source = typeof ref?.source === 'string' ? ref.source : null;
        results.push({ id, source, status: 'rejected' });
        // The common form without zod's machinery; zod decides (and words) everything else.
        let e = parseCloudEventFast(raw);
        if (e === undefined) {
          const parsed = cloudEvent.safeParse(raw);
          if (!parsed.success) {
            const issue = parsed.error.issues[0];
            results[index]!.reason =
              `${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'}`;
            return;
          }
          e = parsed.data;
        }
        const occurredAt = new Date(e.time);
        if (occurredAt.getTime() > now + FUTURE_TOLERANCE_MS) {
          results[index]!.reason = 'time: more than 5 minutes in the future';
          return;
        }
        if (occurredAt.getTime() < EARLIEST_EVENT_TIME) {
          results[index]!.reason = 'time: before 2000-01-01';
          return;
        }
        valid.push({
          index,
          event: {
            source: e.source,
            eventId: e.id,
            occurredAt,
            accountId: e.subject,
            appId: e.data.app_id ?? null,
            keyId: e.data.key_id ?? null,
            clientId: e.data.client_id ?? null,
            endUserId: e.data.end_user_id ?? null,
            pipeline: e.data.pipeline,
            modelId: e.data.model_id ?? null,
            unit: e.data.unit,
            quantity: BigInt(e.data.quantity),
            feeWei: BigInt(e.data.fee_wei),
            status: e.data.status ?? null,
            latencyMs: e.data.latency_ms ?? null,
            attributes: e.data.attributes ?? {},
          },
        });
      });
      await assertMayWrite((ctx.state as AuthState).principal, valid);
      const accounts = await service.existingAccounts([
        ...new Set(valid.map((v) => v.event.accountId)),
      ]);
      const known = valid.filter((v) => {
        if (accounts.has(v.event.accountId)) return true;
        results[v.index]!.reason = 'subject: unknown account';
        return false;
      });
      // Acknowledged only after commit: record() resolves once the batch is in PostgreSQL.
      const outcomes = await service.record(known.map((v) => v.event));
      known.forEach((v, i) => {
        results[v.index] = {
          id: results[v.index]!.id,
          source: results[v.index]!.source,
          status: outcomes[i]!,
        };
      });
      const count = (status: Result['status']) => results.filter((r) => r.status === status).length;
      return {
        accepted: count('accepted'),
        duplicates: count('duplicate'),
        rejected: count('rejected'),
        results,
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/usage',
      access: usageReader,
      query: summaryQuery,
      response: summaryResponse,
    },
    async function usageSummary({ query, ctx }) {
      const range = resolveRange(query.from, query.to, clock(), true);
      const groupBy = query.group_by ?? [];
      const rows = await service.summarize(
        (ctx.state as AuthState).principal,
        toUsageQuery(query, range),
        groupBy,
      );
      return usageSummaryView(range, groupBy, rows);
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/usage/events',
      access: usageReader,
      query: eventsQuery,
      response: eventsResponse,
    },
    async function usageEvents({ query, ctx }) {
      const range = resolveRange(query.from, query.to, clock(), false);
      const cursor = query.cursor === undefined ? null : decodeCursor(query.cursor);
      const events = await service.events(
        (ctx.state as AuthState).principal,
        toUsageQuery(query, range),
        cursor,
        query.limit,
      );
      const last = events.length === query.limit ? events[events.length - 1] : undefined;
      return {
        events: events.map(toUsageEventView),
        next_cursor:
          last === undefined ? null : encodeCursor({ occurredAt: last.occurredAt, id: last.id }),
      };
    },
  );
}

function toUsageQuery(
  query: {
    account_id?: string;
    app_id?: string;
    end_user_id?: string;
    pipeline?: string;
    model_id?: string;
  },
  range: { from: Date; to: Date },
): UsageQuery {
  return {
    ...range,
    ...(query.account_id !== undefined ? { accountId: query.account_id } : {}),
    ...(query.app_id !== undefined ? { appId: query.app_id } : {}),
    ...(query.end_user_id !== undefined ? { endUserId: query.end_user_id } : {}),
    ...(query.pipeline !== undefined ? { pipeline: query.pipeline } : {}),
    ...(query.model_id !== undefined ? { modelId: query.model_id } : {}),
  };
}

/** Default: the current UTC month. Rollup queries are widened to whole hours. */
/**
 * GET /v1/usage's answer, from rollup rows: the rows and their totals, counts as numbers and
 * amounts as decimal strings. `tollhouse usage show` prints the same view.
 */
export function usageSummaryView(
  range: { from: Date; to: Date },
  groupBy: readonly GroupBy[],
  rows: readonly UsageRow[],
): z.output<typeof summaryResponse> {
  const quantities = new Map<string, bigint>();
  let events = 0n;
  let failed = 0n;
  let fee = 0n;
  for (const row of rows) {
    events += row.events;
    failed += row.failedEvents;
    fee += row.feeWei;
    quantities.set(row.unit, (quantities.get(row.unit) ?? 0n) + row.quantity);
  }
  return {
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    group_by: [...groupBy],
    totals: {
      events: Number(events),
      failed_events: Number(failed),
      fee_wei: fee.toString(),
      quantities: [...quantities]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([unit, quantity]) => ({ unit, quantity: quantity.toString() })),
    },
    rows: rows.map((r) => ({
      ...r.dimensions,
      unit: r.unit,
      events: Number(r.events),
      failed_events: Number(r.failedEvents),
      quantity: r.quantity.toString(),
      fee_wei: r.feeWei.toString(),
    })),
  };
}

function resolveRange(
  from: string | undefined,
  to: string | undefined,
  now: Date,
  hourly: boolean,
) {
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  let start = from === undefined ? monthStart : new Date(from);
  let end = to === undefined ? nextMonth : new Date(to);
  if (hourly) {
    start = new Date(Math.floor(start.getTime() / HOUR_MS) * HOUR_MS);
    end = new Date(Math.ceil(end.getTime() / HOUR_MS) * HOUR_MS);
  }
  if (end.getTime() <= start.getTime()) {
    throw new InvalidRequest('query.to: must be after from');
  }
  if (end.getTime() - start.getTime() > MAX_RANGE_MS) {
    throw new InvalidRequest('query: the range may span at most 400 days');
  }
  return { from: start, to: end };
}

function encodeCursor(cursor: EventCursor): string {
  return Buffer.from(`${cursor.occurredAt.toISOString()}|${cursor.id}`).toString('base64url');
}

function decodeCursor(value: string): EventCursor {
  const [time, id] = Buffer.from(value, 'base64url').toString('utf8').split('|');
  if (
    time === undefined ||
    id === undefined ||
    !/^\d{1,19}$/.test(id) ||
    Number.isNaN(Date.parse(time))
  ) {
    throw new InvalidRequest('query.cursor: not a cursor returned by this API');
  }
  return { occurredAt: new Date(time), id: BigInt(id) };
}
