// Credentials for tests of any capability: API keys made through the keys capability's own
// service (accounts come from ./fixtures.ts), plus a small HTTP helper that returns status,
// headers and JSON.
import { CLI_CALLER } from '../../src/keys/index.ts';
import type { IssuedKey } from '../../src/keys/index.ts';
import type { Scope } from '../../src/platform/auth.ts';
import type { TestApp } from './app.ts';
import { newAccount } from './fixtures.ts';

export async function issueKey(
  t: Pick<TestApp, 'app'>,
  accountId: string,
  options: {
    kind?: 'backend' | 'browser';
    scopes?: Scope[];
    allowedOrigins?: string[];
    allowedResources?: string[];
    expiresAt?: Date;
    name?: string;
  } = {},
): Promise<IssuedKey> {
  return t.app.keys.service.create(CLI_CALLER, {
    accountId,
    kind: options.kind ?? 'backend',
    name: options.name ?? 'test',
    scopes: options.scopes,
    allowedOrigins: options.allowedOrigins,
    allowedResources: options.allowedResources,
    expiresAt: options.expiresAt,
  });
}

export function bearer(secret: string, extra: Record<string, string> = {}) {
  return { authorization: `Bearer ${secret}`, ...extra };
}

export async function call(
  t: TestApp,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: unknown; raw?: string } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${t.url}${path}`, { method, headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = text;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: response.status, headers: response.headers, body: json as any };
}

/** A fresh admin account and a backend key with the `admin` scope. */
export async function adminKey(
  t: Pick<TestApp, 'app'>,
): Promise<{ accountId: string; secret: string }> {
  const accountId = await newAccount(t);
  const key = await issueKey(t, accountId, { scopes: ['admin'] });
  return { accountId, secret: key.secret };
}
