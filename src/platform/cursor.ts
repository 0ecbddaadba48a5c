// Opaque keyset cursors for time-ordered lists (/v1/keys, /v1/apps): the last row's sort
// position, base64url like the accounts cursor. The position carries PostgreSQL's own
// microsecond timestamp text (not a JS Date, which keeps milliseconds only and would skip
// rows created within the same millisecond) and the row id as the tie-breaker. The list's
// scope (the account, or `*` for every account) is inside too, so a cursor from another
// list or another account is refused instead of silently paging the wrong list.
import { z } from 'zod';
import { InvalidRequest } from './errors.ts';
import { isId } from './ids.ts';

export interface Position {
  /** `created_at` as PostgreSQL renders it with `POSITION_TIME` (UTC, microseconds). */
  at: string;
  id: string;
}

/** SQL format for `to_char(created_at at time zone 'UTC', …)`; `::timestamptz` reads it back. */
export const POSITION_TIME = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodePosition(list: string, scope: string, position: Position): string {
  return Buffer.from(`${list}|${scope}|${position.at}|${position.id}`, 'utf8').toString(
    'base64url',
  );
}

/**
 * The position in `cursor`, which must have come from `list` for `scope` and name a row id
 * with `idPrefix` (`key`, `app`); otherwise the same 400 as every other list's bad cursor.
 */
export function decodePosition(
  cursor: string,
  list: string,
  scope: string,
  idPrefix: string,
): Position {
  const refuse = () => new InvalidRequest('query.cursor: not a cursor returned by this API');
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw refuse();
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const parts = decoded.split('|');
  if (parts.length !== 4) throw refuse();
  const [kind, owner, at, id] = parts as [string, string, string, string];
  const position = { at, id };
  // Round-trips only if it was valid UTF-8 we encoded (no padding or stray bits).
  if (encodePosition(kind, owner, position) !== cursor) throw refuse();
  if (kind !== list || owner !== scope || !TIME.test(at) || !isId(idPrefix, id)) throw refuse();
  // The regex admits 2026-02-30, which PostgreSQL would refuse with a 500: the date must be
  // one the calendar has (it survives a round trip through Date).
  const ms = `${at.slice(0, 23)}Z`;
  const date = new Date(ms);
  if (Number.isNaN(date.getTime()) || date.toISOString() !== ms) throw refuse();
  return position;
}

// Every paged list takes the same `limit` and `cursor` as GET /v1/accounts.
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;
// The CLI prints a whole list up to this many rows: far beyond any real account.
export const LIST_ALL_CAP = 10_000;

export const pageQuery = {
  // Decimal digits only: Number() would also take `0x10`, `1e2` and ` 5 `.
  limit: z
    .string()
    .regex(/^\d{1,9}$/, 'expected a whole number')
    .default(String(DEFAULT_PAGE))
    .transform(Number)
    .pipe(z.int().min(1).max(MAX_PAGE)),
  cursor: z.string().min(1).max(700).optional(),
};

/** `limit` (DEFAULT_PAGE when absent) once checked: services are called by the CLI too. */
export function pageLimit(limit: number | undefined): number {
  const value = limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE) {
    throw new InvalidRequest(`limit: expected 1 to ${MAX_PAGE}`);
  }
  return value;
}

/** One page of `T`, and the cursor of the next (null on the last page). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/**
 * `rows` fetched with `limit + 1` (one more than asked tells whether there is a next page
 * without a count query), cut to `limit`, with the cursor of the last row kept.
 */
export function toPage<R extends { sort_at: string; id: string }, T>(
  rows: R[],
  limit: number,
  cursorOf: (position: Position) => string,
  map: (row: R) => T,
): Page<T> {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(map),
    nextCursor:
      rows.length > limit && last !== undefined
        ? cursorOf({ at: last.sort_at, id: last.id })
        : null,
  };
}

/**
 * Follows a list's cursors from the start until the last page or `maxItems`, for callers that
 * show a whole list (the CLI, console pages). `nextCursor` is non-null only when the cap cut
 * the list short, so the caller can say so (or link on) instead of dropping rows silently.
 */
export async function collectPages<T>(
  fetchPage: (cursor: string | undefined, limit: number) => Promise<Page<T>>,
  maxItems: number,
  start?: string,
): Promise<Page<T>> {
  const items: T[] = [];
  let cursor = start;
  for (;;) {
    const page = await fetchPage(cursor, Math.min(MAX_PAGE, maxItems - items.length));
    items.push(...page.items);
    if (page.nextCursor === null || items.length >= maxItems) {
      return { items, nextCursor: page.nextCursor };
    }
    cursor = page.nextCursor;
  }
}
