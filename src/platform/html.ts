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
