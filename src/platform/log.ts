// One pino logger, built at the root (src/main.ts or a test) and passed down; a child per
// request. Secrets never reach the output: any field whose name says it holds one is replaced,
// at any depth, before the line is written.
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** pino's levels, plus `silent`; src/config.ts validates LOG_LEVEL against this list. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const REDACTED = '[redacted]';

// Names that hold credentials: authorization/cookie headers, *secret*, *password*, *token*,
// and *key* fields (apiKey, private_key, x-api-key). Identifiers of keys (keyId, key_prefix)
// are kept: they are what an operator searches logs for.
const SECRET_NAME = /secret|passw(or)?d|passphrase|token|authorization|cookie|credential/i;
const KEY_NAME = /(^|[-_])key$|[a-z]Key$|^key$/;

export function isSecretFieldName(name: string): boolean {
  return SECRET_NAME.test(name) || KEY_NAME.test(name);
}

const MAX_DEPTH = 8;

/** A copy of `value` with secret-named fields replaced; unchanged objects are returned as is. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (value instanceof Error || value instanceof Date || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((item) => {
      const next = redactSecrets(item, depth + 1);
      if (next !== item) changed = true;
      return next;
    });
    return changed ? out : value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [name, inner] of Object.entries(value)) {
    const next =
      isSecretFieldName(name) && inner !== undefined && inner !== null
        ? REDACTED
        : redactSecrets(inner, depth + 1);
    if (next !== inner) {
      out ??= { ...(value as Record<string, unknown>) };
      out[name] = next;
    }
  }
  return out ?? value;
}

export interface LogOptions {
  level: LogLevel;
  /** Where lines go; stdout by default. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'tollhouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactSecrets(object) as Record<string, unknown>,
      },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
