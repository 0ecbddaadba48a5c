// The one string rule at every boundary (JSON bodies, query strings, path parameters, HTML
// forms): text may not contain a NUL character or a lone UTF-16 surrogate. PostgreSQL cannot
// store either in `text` or `jsonb` ("invalid byte sequence for encoding UTF8: 0x00",
// "unsupported Unicode escape sequence"), so without this rule such input surfaces as a 500
// from whichever query meets it first. Refusing it where input enters keeps that query from
// ever running. Pure: no I/O.
import { InvalidRequest } from './errors.ts';

// Deep enough for any body the API accepts (usage events' `attributes` are the deepest); a
// deeper value is refused rather than walked, so a hostile body cannot make this recursion
// deep. JSON.parse itself is bounded by the body size limit.
export const MAX_DEPTH = 64;
const TOO_DEEP = '<too deep>';

/** Whether one string obeys the rule. `isWellFormed` is false exactly for lone surrogates. */
export function isCleanString(value: string): boolean {
  return value.isWellFormed() && !value.includes('\0');
}

/**
 * The path (`name`, `events.0.attributes.k`) of the first string — value or object key — that
 * breaks the rule, `<too deep>` for input nested beyond MAX_DEPTH, or null when every string
 * in `value` is clean.
 */
export function findUncleanString(value: unknown, depth = 0): string | null {
  if (typeof value === 'string') return isCleanString(value) ? null : '';
  if (typeof value !== 'object' || value === null) return null;
  if (depth >= MAX_DEPTH) return TOO_DEEP;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const at = findUncleanString(value[i], depth + 1);
      if (at !== null) return join(String(i), at);
    }
    return null;
  }
  for (const key in value) {
    if (!isCleanString(key)) return '<key>';
    const at = findUncleanString((value as Record<string, unknown>)[key], depth + 1);
    if (at !== null) return join(key, at);
  }
  return null;
}

function join(head: string, tail: string): string {
  // Too deep is reported as such, not as a path nobody could read.
  if (tail === TOO_DEEP) return tail;
  return tail === '' ? head : `${head}.${tail}`;
}

/** The message shared by every boundary that refuses such input. */
export function uncleanStringMessage(location: string, path: string): string {
  if (path === TOO_DEEP) return `${location}: nested more than ${MAX_DEPTH} levels deep`;
  const where = path === '' ? location : `${location}.${path}`;
  return `${where}: text must not contain NUL characters or unpaired UTF-16 surrogates`;
}

/** Throws InvalidRequest (400) when `value` holds a string that breaks the rule. */
export function assertCleanStrings(location: 'params' | 'query' | 'body', value: unknown): void {
  const path = findUncleanString(value);
  if (path === null) return;
  const message = uncleanStringMessage(location, path);
  const issuePath = path === TOO_DEEP ? '' : path;
  throw new InvalidRequest(message, {
    details: {
      issues: [{ location, path: issuePath, message: message.slice(message.indexOf(': ') + 2) }],
    },
  });
}

/**
 * A raw request path (still percent-encoded, as Koa's `ctx.path` is) that decodes to text
 * breaking the rule. Checked once per request for every route served through Koa, so ids in
 * paths of routes outside `defineRoute` (oidc-provider's, the console's) are covered too.
 * Undecodable escapes are left alone: routers keep such segments as they are, which is
 * clean ASCII.
 */
export function isCleanPath(rawPath: string): boolean {
  if (!rawPath.includes('%')) return true;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    // Invalid UTF-8 (which is how a lone surrogate arrives percent-encoded): segment by
    // segment, so one bad escape does not hide a NUL in another.
    return rawPath.split('/').every((segment) => {
      try {
        return isCleanString(decodeURIComponent(segment));
      } catch {
        return true;
      }
    });
  }
  return isCleanString(decoded);
}
