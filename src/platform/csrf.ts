// Double-submit CSRF tokens for the server-rendered forms (sign-in, onboarding pages): a random
// token in an HttpOnly, SameSite=Strict cookie scoped to the pages' path, repeated in a hidden
// form field; a POST is honoured only when both match. The cookie is reused while it looks
// like one of ours, so several open tabs of the same pages keep working.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

export interface Csrf {
  /** The token for a form (set as a cookie when the browser has none). */
  token(ctx: Context): string;
  /** Whether a submitted form's token matches the browser's cookie. */
  valid(ctx: Context, submitted: unknown): boolean;
}

// 32 random bytes in base64url.
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function createCsrf({
  cookie,
  path,
  secure,
}: {
  cookie: string;
  /** The cookie's path: the pages that post forms. */
  path: string;
  /** Secure cookies (PUBLIC_URL is https). */
  secure: boolean;
}): Csrf {
  return {
    token(ctx) {
      const existing = ctx.cookies.get(cookie);
      if (existing !== undefined && TOKEN_PATTERN.test(existing)) return existing;
      const token = randomBytes(32).toString('base64url');
      ctx.cookies.set(cookie, token, {
        httpOnly: true,
        sameSite: 'strict',
        path,
        secure,
        overwrite: true,
      });
      return token;
    },
    valid(ctx, submitted) {
      const expected = ctx.cookies.get(cookie);
      if (typeof submitted !== 'string' || expected === undefined) return false;
      const a = Buffer.from(expected);
      const b = Buffer.from(submitted);
      return a.length === b.length && timingSafeEqual(a, b);
    },
  };
}
