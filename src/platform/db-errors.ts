// Telling "PostgreSQL is not there right now" from "this statement failed" (platform/http.ts
// answers the first 503).

// SQLSTATE classes that mean "the server is not there right now", not "this query is wrong":
// 08 connection exception, 57P01–57P03 admin/crash shutdown and "cannot connect now" (the
// server restarting), 53300 too many connections.
const UNAVAILABLE_SQLSTATE = /^(08|57P0[123]$|53300$)/;
// What node-postgres and the socket raise when the connection is gone or cannot be made.
const UNAVAILABLE_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * Whether `error` says PostgreSQL is unreachable (restarting, failed over, out of
 * connections) rather than that the statement failed: the HTTP layer answers such errors 503
 * with Retry-After, so clients retry (ingest is idempotent on event ids), instead of a 500
 * that reads as a bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code)))
    return true;
  return UNAVAILABLE_MESSAGE.test(error.message);
}
