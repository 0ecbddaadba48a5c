// HTML escaping shared by the server-rendered pages (identity's login pages, the console):
// one definition, so a fix to what counts as safe text lands in both.

/** Text → HTML text or attribute value (quoted with " or '). */
export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** What `setPageHeaders` sets: every HTML page tollhouse serves carries all of them. */
export const PAGE_HEADER_NAMES = [
  'Content-Security-Policy',
  'X-Content-Type-Options',
  'Referrer-Policy',
  'X-Frame-Options',
] as const;

/**
 * The security headers of an HTML page, with the page family's own CSP (the console's and the
 * sign-in pages' differ in what they may load). X-Frame-Options repeats CSP `frame-ancestors`
 * for browsers without CSP level 2; nosniff keeps a JSON or text answer from being run as HTML.
 */
export function setPageHeaders(
  ctx: { set(name: string, value: string): void },
  contentSecurityPolicy: string,
): void {
  ctx.set('Content-Security-Policy', contentSecurityPolicy);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'same-origin');
  ctx.set('X-Frame-Options', 'DENY');
}
