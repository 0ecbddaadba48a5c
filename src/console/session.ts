// Console sessions: the browser holds a random id in an HttpOnly cookie; the row (keyed by an
// HMAC of that id) holds the sealed access token, the account, its scopes and a CSRF token.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Secrets } from '../platform/secrets.ts';
import {
  deleteConsoleSessionByIdHash,
  deleteExpiredConsoleSessions,
  findConsoleSessionByIdHash,
  insertConsoleSession,
} from './queries.ts';
import type { Clock } from '../platform/clock.ts';
import { systemClock } from '../platform/clock.ts';

export const SESSION_COOKIE = 'tollhouse_console';
// 256 bits: as strong as the HMAC that stores it.
const ID_BYTES = 32;
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface ConsoleSession {
  accountId: string;
  email: string;
  scopes: string[];
  isAdmin: boolean;
  /** The account has not finished the "get started" steps (the nav offers the page). */
  getStartedOpen: boolean;
  accessToken: string;
  csrfToken: string;
  expiresAt: Date;
}

export interface SessionStore {
  /** Stores a new session and sets its cookie. */
  start(
    ctx: Context,
    input: {
      accountId: string;
      email: string;
      scopes: string[];
      accessToken: string;
      refreshToken: string | null;
      expiresAt: Date;
    },
  ): Promise<void>;
  /** The session the request's cookie names, or null (absent, unknown or expired). */
  load(ctx: Context): Promise<ConsoleSession | null>;
  /** Deletes the request's session and clears its cookie. */
  end(ctx: Context): Promise<void>;
  sweep(): Promise<number>;
}

export function createSessionStore(deps: {
  db: Kysely<Database>;
  secrets: Secrets;
  secureCookies: boolean;
  clock?: Clock;
}): SessionStore {
  const { db, secrets, secureCookies } = deps;
  const clock = deps.clock ?? systemClock;
  const box = secrets.box('console-sessions');
  const hashId = (id: string) => secrets.hmac('console-sessions', id);

  function cookieId(ctx: Context): string | null {
    const value = ctx.cookies.get(SESSION_COOKIE);
    return value !== undefined && ID_PATTERN.test(value) ? value : null;
  }

  return {
    async start(ctx, input) {
      const id = randomBytes(ID_BYTES).toString('base64url');
      const idHash = hashId(id);
      await insertConsoleSession(db, {
        id_hash: idHash,
        account_id: input.accountId,
        email: input.email,
        scopes: input.scopes.join(' '),
        // The id hash binds each sealed token to its row: a token cannot be moved to another.
        access_token_sealed: box.seal(input.accessToken, idHash),
        refresh_token_sealed:
          input.refreshToken === null ? null : box.seal(input.refreshToken, idHash),
        csrf_token: randomBytes(32).toString('base64url'),
        expires_at: input.expiresAt,
      });
      ctx.cookies.set(SESSION_COOKIE, id, {
        httpOnly: true,
        sameSite: 'lax',
        secure: secureCookies,
        path: '/console',
        expires: input.expiresAt,
        overwrite: true,
      });
    },
    async load(ctx) {
      const id = cookieId(ctx);
      if (id === null) return null;
      const idHash = hashId(id);
      const row = await findConsoleSessionByIdHash(db, idHash, clock());
      if (row === undefined) return null;
      const scopes = row.scopes.split(' ').filter(Boolean);
      return {
        accountId: row.account_id,
        email: row.email,
        scopes,
        isAdmin: scopes.includes('admin'),
        getStartedOpen: row.get_started_completed_at === null,
        accessToken: box.open(row.access_token_sealed, idHash),
        csrfToken: row.csrf_token,
        expiresAt: row.expires_at,
      };
    },
    async end(ctx) {
      const id = cookieId(ctx);
      if (id !== null) await deleteConsoleSessionByIdHash(db, hashId(id));
      ctx.cookies.set(SESSION_COOKIE, '', {
        httpOnly: true,
        sameSite: 'lax',
        secure: secureCookies,
        path: '/console',
        maxAge: 0,
        overwrite: true,
      });
    },
    sweep() {
      return deleteExpiredConsoleSessions(db, clock());
    },
  };
}

/** Constant-time comparison of a submitted CSRF token with the session's. */
export function csrfMatches(session: ConsoleSession, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false;
  const a = Buffer.from(session.csrfToken);
  const b = Buffer.from(submitted);
  return a.length === b.length && timingSafeEqual(a, b);
}
