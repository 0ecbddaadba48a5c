// The console's only way to make HTML: a tagged template that escapes every interpolated value
// unless it is already `Html` (built by this template or `raw`). Pure, no I/O.
import { escapeHtml } from '../platform/html.ts';

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

type Value = Html | string | number | bigint | boolean | null | undefined | readonly Value[];

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** `html\`<p>${userText}</p>\`` — strings are escaped, `Html` and arrays of it are not. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted markup (constants written in this folder), never user or API data. */
export function raw(markup: string): Html {
  return new Html(markup);
}
