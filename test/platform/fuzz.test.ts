// Hostile input against every operation in openapi.yaml, as an operator (admin key) and as a
// plain account credential: malformed JSON, wrong types, NUL characters, lone surrogates, huge
// numbers, strings and bodies, bad ids and cursors, duplicated query parameters. Whatever the
// answer, it is never a 5xx, and every error body is `{"error": …, "message": …}`.
//
// Deterministic: the cases are derived from the document in order, and the few choices made at
// random come from a seeded generator, so a failure names a request that can be replayed.
// Bounded: a fixed number of cases per operation, so it runs in CI on either database.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { loadSpec } from '../support/openapi.ts';
import { newAccount } from '../support/fixtures.ts';

// At most this many body and query cases per operation and principal (drawn from all of them
// with the seeded generator): 2 principals × ~40 operations × this stays in the low thousands.
const MAX_CASES_PER_OPERATION = 80;
const SEED = 0x7011_4005;

/** mulberry32: a tiny seeded PRNG, so the draw is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sample<T>(items: T[], count: number, random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, count);
}

// Raw path segments, already percent-encoded as a client would put them on the wire.
const BAD_IDS = [
  'x',
  '%00',
  'key_%00abc',
  '%ED%A0%80', // a lone surrogate (U+D800) as UTF-8 bytes: not valid UTF-8
  '%F0%9F%92%A9',
  'a'.repeat(3000),
  '-1',
  '1e309',
  '%27%3B%20drop%20table%20accounts%3B%20--',
  '%2e%2e',
];

// Raw query values (percent-encoded on the wire).
const BAD_QUERY_VALUES = [
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%ED%B0%80x',
  '99999999999999999999999999999',
  '-1',
  '1e309',
  'NaN',
  '',
  'a'.repeat(5000),
  '2026-13-45T99%3A99%3A99Z',
  '!!!',
  Buffer.from('{"at":"2026-01-01","id":1}').toString('base64url'),
  Buffer.from('\u0000\u0000').toString('base64url'),
  'true',
  '%5B%5D',
];

// A number no JS number holds exactly, and one beyond the double range (JSON.parse: Infinity).
const HUGE = '__HUGE_NUMBER__';
const HUGER = '__HUGER_NUMBER__';
const WRONG_VALUES: unknown[] = [
  123,
  -1,
  1.5,
  HUGE,
  HUGER,
  'x',
  '',
  true,
  null,
  [],
  {},
  [null, 1, 'x'],
  { nested: { deeper: ['\u0000'] } },
  '\u0000',
  'name\u0000with nul',
  '\ud800',
  'tail \udc00',
  'a'.repeat(100_000),
  '9'.repeat(100),
];

// Whole bodies that are not what any operation accepts.
const BAD_BODIES: { text: string; type: string }[] = [
  { text: '{', type: 'application/json' },
  { text: '{"a":', type: 'application/json' },
  { text: '[1,]', type: 'application/json' },
  { text: 'nul', type: 'application/json' },
  { text: '\u0000', type: 'application/json' },
  { text: '"a string"', type: 'application/json' },
  { text: '123', type: 'application/json' },
  { text: 'null', type: 'application/json' },
  { text: '[]', type: 'application/json' },
  { text: '{}', type: 'application/json' },
  { text: '{"\\u0000":1}', type: 'application/json' },
  { text: '{"name":"\\ud800"}', type: 'application/json' },
  {
    text: '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}',
    type: 'application/json',
  },
  { text: `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`, type: 'application/json' },
  { text: 'name=x', type: 'application/x-www-form-urlencoded' },
  { text: '{"name":"x"}', type: 'text/plain' },
  { text: '{"name":"x"}', type: 'application/json; charset=utf-16' },
];

function encodeJson(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll(`"${HUGE}"`, '123456789012345678901234567890')
    .replaceAll(`"${HUGER}"`, `1${'0'.repeat(400)}`);
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
}

interface Case {
  label: string;
  method: string;
  path: string;
  body?: { text: string; type: string };
}

type Spec = ReturnType<typeof loadSpec> & {
  components: {
    parameters?: Record<string, Parameter>;
    schemas?: Record<string, unknown>;
  };
};

function resolve(spec: Spec, value: unknown): Record<string, unknown> {
  let current = value as Record<string, unknown> | undefined;
  for (let i = 0; i < 10 && current !== undefined && typeof current.$ref === 'string'; i++) {
    const [, , section, name] = current.$ref.split('/');
    current = (spec.components as Record<string, Record<string, unknown>>)[section!]?.[name!] as
      Record<string, unknown> | undefined;
  }
  return current ?? {};
}

/** A valid-looking body shape: the top-level object's property names (of array items too). */
function bodyShape(
  spec: Spec,
  operation: Record<string, unknown>,
): { array: boolean; props: string[] } | null {
  const requestBody = resolve(spec, operation.requestBody);
  const content = requestBody.content as Record<string, { schema?: unknown }> | undefined;
  const schema = content === undefined ? undefined : Object.values(content)[0]?.schema;
  if (schema === undefined) return null;
  let resolved = resolve(spec, schema);
  const array = resolved.type === 'array';
  if (array) resolved = resolve(spec, resolved.items);
  const props = Object.keys((resolved.properties as Record<string, unknown> | undefined) ?? {});
  return { array, props };
}

let t: TestApp;
const principals: { name: string; secret: string }[] = [];
// Real ids for path parameters, so well-formed bodies reach the handlers' queries too. They
// belong to a victim account and key, never to the principals making the requests.
const realIds: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestApp({
    env: { LIVEPEER_WEBHOOK_SECRET: 'w'.repeat(32), BILLING_ETH_USD_RATE: '2500' },
  });
  const admin = await adminKey(t);
  principals.push({ name: 'admin', secret: admin.secret });
  const accountId = await newAccount(t);
  const plain = await issueKey(t, accountId, {
    scopes: ['gateway', 'signer', 'usage:read', 'usage:write', 'billing:read'],
  });
  principals.push({ name: 'account', secret: plain.secret });
  const victim = await newAccount(t);
  realIds.account = victim;
  realIds.key = (await issueKey(t, accountId, { scopes: ['usage:read'] })).key.id;
  const { app } = await t.app.identity.apps.create(
    { name: 'Fuzzed', kind: 'machine', ownerAccountId: accountId, scopes: ['gateway'] },
    { id: 'test' },
  );
  realIds.app = app.id;
  const stream = await call(t, 'POST', '/v1/streams', {
    headers: bearer(plain.secret),
    body: { name: 'fuzzed' },
  });
  expect(stream.status).toBe(201);
  realIds.stream = stream.body.id;
});
afterAll(async () => t?.close());

/** The path with its parameters filled: real ids by resource, or `bad` for every one. */
function fillPath(template: string, bad: string | null): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    if (bad !== null) return bad;
    if (name === 'external_id') return 'user-1';
    const resource = /^\/v1\/(\w+?)s?\//.exec(template)?.[1] ?? '';
    return realIds[resource] ?? 'x';
  });
}

function casesFor(spec: Spec, path: string, method: string, random: () => number): Case[] {
  const item = spec.paths[path] as unknown as Record<string, unknown>;
  const operation = item[method] as Record<string, unknown>;
  const parameters = [
    ...((item.parameters as unknown[]) ?? []),
    ...((operation.parameters as unknown[]) ?? []),
  ].map((p) => resolve(spec, p) as unknown as Parameter);
  const M = method.toUpperCase();
  const cases: Case[] = [];

  if (path.includes('{')) {
    for (const id of BAD_IDS)
      cases.push({ label: `id ${id.slice(0, 20)}`, method: M, path: fillPath(path, id) });
  }
  const target = fillPath(path, null);

  const drawn: Case[] = [];
  const query = parameters.filter((p) => p.in === 'query');
  for (const p of query) {
    for (const value of BAD_QUERY_VALUES) {
      drawn.push({
        label: `query ${p.name}=${value.slice(0, 20)}`,
        method: M,
        path: `${target}?${p.name}=${value}`,
      });
    }
    drawn.push({
      label: `query ${p.name} twice`,
      method: M,
      path: `${target}?${p.name}=1&${p.name}=2`,
    });
  }
  if (query.length > 0) {
    const all = query.map((p) => `${p.name}=%00`).join('&');
    cases.push({ label: 'every query parameter NUL', method: M, path: `${target}?${all}` });
  }
  // Undeclared parameters are ignored, not a crash.
  cases.push({
    label: 'unknown query parameters',
    method: M,
    path: `${target}?zz=%00&zz=%ED%A0%80`,
  });

  const shape = bodyShape(spec, operation);
  if (shape !== null) {
    for (const body of BAD_BODIES)
      drawn.push({ label: `body ${body.text.slice(0, 24)}`, method: M, path: target, body });
    const wrap = (value: unknown) => (shape.array ? [value] : value);
    for (const prop of shape.props) {
      for (const value of WRONG_VALUES) {
        const text = encodeJson(wrap({ [prop]: value }));
        drawn.push({
          label: `body ${prop}=${JSON.stringify(value)?.slice(0, 20)}`,
          method: M,
          path: target,
          body: { text, type: 'application/json' },
        });
      }
    }
    // Always: NUL and a lone surrogate in every property at once, and a body over the limit.
    const every = (value: string) =>
      encodeJson(wrap(Object.fromEntries(shape.props.map((p) => [p, value]))));
    cases.push({
      label: 'body every field NUL',
      method: M,
      path: target,
      body: { text: every('\u0000'), type: 'application/json' },
    });
    cases.push({
      label: 'body every field surrogate',
      method: M,
      path: target,
      body: { text: every('\ud800'), type: 'application/json' },
    });
    cases.push({
      label: 'body over the size limit',
      method: M,
      path: target,
      body: { text: encodeJson(wrap({ name: 'x'.repeat(1_200_000) })), type: 'application/json' },
    });
  }
  return [...cases, ...sample(drawn, MAX_CASES_PER_OPERATION, random)];
}

interface Answer {
  status: number;
  type: string;
  text: string;
}

/** node:http, so the path goes on the wire exactly as built (fetch would re-encode it). */
function send(c: Case, secret: string): Promise<Answer> {
  const { port } = new URL(t.url);
  const headers: Record<string, string> = { ...bearer(secret) };
  if (c.body !== undefined) headers['content-type'] = c.body.type;
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, method: c.method, path: c.path, headers },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            type: String(response.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(c.body?.text);
  });
}

// The go-livepeer remote-signer protocol answers in go-livepeer's error shape
// ({"error":{"message"}}, parsed by go-livepeer gateways and Livepeer's Python client), and
// with 503 while this app's signer has no keystore (a documented state, not a crash).
const GO_LIVEPEER_PATHS = [
  '/sign-orchestrator-info',
  '/generate-live-payment',
  '/discover-orchestrators',
];

function problem(answer: Answer, path = ''): string | null {
  const goLivepeer = GO_LIVEPEER_PATHS.some((p) => path === p || path.startsWith(`${p}?`));
  // The signer's operator transactions (POST /v1/signer/…) document the same 503 when off.
  const signerOff =
    answer.status === 503 &&
    ((goLivepeer && /no keystore/.test(answer.text)) ||
      (/^\/v1\/signer\/[a-z-]+$/.test(path) &&
        /"ServiceUnavailable".*payment signer is disabled/.test(answer.text)));
  if (answer.status >= 500 && !signerOff) {
    return `status ${answer.status}: ${answer.text.slice(0, 200)}`;
  }
  if (answer.status < 400) return null;
  if (!answer.type.startsWith('application/json')) return `error with content type ${answer.type}`;
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    return `error body is not JSON: ${answer.text.slice(0, 100)}`;
  }
  if (goLivepeer) {
    const inner = (body as { error?: { message?: unknown } } | null)?.error?.message;
    return typeof inner === 'string' && inner !== ''
      ? null
      : `error body is not {"error":{"message"}}: ${answer.text.slice(0, 200)}`;
  }
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  if (typeof error !== 'string' || typeof message !== 'string' || message === '') {
    return `error body is not {"error","message"}: ${answer.text.slice(0, 200)}`;
  }
  return null;
}

describe('fuzzing every operation in openapi.yaml', () => {
  it('never answers 5xx, and every error is {"error","message"}', async () => {
    const spec = loadSpec() as Spec;
    const random = seeded(SEED);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((method) => ({ path, method })),
    );
    expect(operations.length).toBeGreaterThan(30);
    for (const { path, method } of operations) {
      const cases = casesFor(spec, path, method, random);
      for (const principal of principals) {
        for (const c of cases) {
          let answer: Answer;
          try {
            answer = await send(c, principal.secret);
          } catch (error) {
            failures.push(
              `${principal.name} ${c.method} ${c.path.slice(0, 80)} [${c.label}]: ${String(error)}`,
            );
            continue;
          }
          sent++;
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          const found = problem(answer, c.path);
          if (found !== null) {
            failures.push(
              `${principal.name} ${c.method} ${c.path.slice(0, 80)} [${c.label}]: ${found}`,
            );
          }
        }
      }
    }
    // What the run covered, for the CI log.
    console.info(
      `fuzz: ${operations.length} operations, ${sent} requests; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(failures).toEqual([]);
    // The hostile input was mostly refused: a run that only saw 2xx would prove nothing.
    expect(statuses.get(400) ?? 0).toBeGreaterThan(sent / 3);
  }, 240_000);
});
