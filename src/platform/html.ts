// The one way server-rendered pages (identity's sign-in pages, the console) make HTML: a tagged
// template that escapes every interpolated value unless it is already `Html` (built by this
// template, or trusted markup passed through `raw`). Safe by construction: forgetting to
// escape is not possible, only choosing `raw` is. Pure, no I/O.

/** Text → HTML text or attribute value (quoted with " or '). */
export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Markup known to be safe: made by `html`, or trusted text passed through `raw`. */
export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export type HtmlValue =
  Html | string | number | bigint | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** `html\`<p>${userText}</p>\`` — strings are escaped, `Html` and arrays of it are not. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted markup (constants in the source, or a library's own rendered form), never user or
 * API data. */
export function raw(markup: string): Html {
  return new Html(markup);
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
