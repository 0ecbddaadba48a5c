// The go-livepeer remote-signer endpoints (LIVEPEER.md §2). Not REST routes: requests and
// responses are go-livepeer's JSON (keys matched case-insensitively on input, as Go's
// encoding/json does; byte fields base64) and every answer on these paths that is not a
// success — 404 and 405 included — is go-livepeer's `{"error":{"message":…}}`, rendered here
// instead of the platform's `{"error":code}` shape, because go-livepeer gateways and
// Livepeer's Python gateway client parse this one (the Python client shows the raw body
// otherwise).
//
// They answer at the ROOT of the listener: go-livepeer builds every signer call as
// `RemoteSignerUrl.ResolveReference(&url.URL{Path: "/generate-live-payment"})`
// (server/live_payment.go, server/remote_signer.go, cmd/livepeer/starter/starter.go), and an
// absolute reference path replaces the base URL's path, so `-remoteSignerUrl=https://host/x`
// calls `https://host/generate-live-payment`. The old `/signer/…` mount stays as an alias
// (for SDK clients configured with it): one more router layer each, nothing per request.
import coBody from 'co-body';
import compose from 'koa-compose';
import type { Context, Middleware, Next } from 'koa';
import type { Authenticator, Principal } from '../../platform/auth.ts';
import { declare } from '../../platform/authz.ts';
import type { Access } from '../../platform/authz.ts';
import { AppError } from '../../platform/errors.ts';
import { assertCleanInput } from '../../platform/http.ts';
import type { DirectRoute, RequestState, Router } from '../../platform/http.ts';
import type { SpendGate } from '../../platform/spend.ts';
import { BadSignerRequest, RemoteSignerError, SignerNotReady } from './errors.ts';
import { parseGoRat } from './rational.ts';
import type { Rational } from './rational.ts';
import { STREAM_HEADER } from './payers.ts';
import type { Payers } from './payers.ts';
import type { LivePaymentRequest, RemoteSignerService } from './service.ts';

// A request carries one OrchestratorInfo (a few KB) and capabilities: 1 MiB is generous and
// keeps a hostile 10 MB body from being buffered.
export const SIGNER_BODY_LIMIT_BYTES = 1024 * 1024;

export interface RemoteSignerRouteDeps {
  service: RemoteSignerService;
  authenticator: Authenticator;
  spend: SpendGate;
  payers: Payers;
  orchestrators: readonly string[];
}

type SignerState = RequestState & { principal: Principal };

/** The three paths, as go-livepeer resolves them (see the file comment). */
export const SIGNER_PATHS = [
  '/sign-orchestrator-info',
  '/generate-live-payment',
  '/discover-orchestrators',
] as const;
/** Where the routes were mounted before they moved to the root; still answered. */
const LEGACY_PREFIX = '/signer';

/** Whether `path` is one of the signer's (root or legacy): they render go-livepeer's errors. */
export function isSignerPath(path: string): boolean {
  const bare = path.startsWith(`${LEGACY_PREFIX}/`) ? path.slice(LEGACY_PREFIX.length) : path;
  return (SIGNER_PATHS as readonly string[]).includes(bare);
}

/**
 * The payment route as a direct route (platform/http.ts DirectRoute): `POST
 * /generate-live-payment` (and its legacy path) through the same middlewares as in the router
 * — go-livepeer's errors, the method check, authentication and authorization, the spend
 * check, the handler — without Koa's dispatch and the router's matching, which were a
 * quarter of a payment's request floor (BENCHMARKS.md, signer). Other methods and paths go
 * through Koa as before.
 */
export type SignerDirectRoute = Pick<DirectRoute, 'claims' | 'answer'>;

export function remoteSignerRoutes(router: Router, deps: RemoteSignerRouteDeps): SignerDirectRoute {
  const chains = new Map<string, Middleware>();
  // `all` and our own method check, so that a wrong method is a 405 in go-livepeer's shape
  // too (the platform's allowedMethods would answer in the REST shape).
  const route = (
    method: 'GET' | 'POST',
    path: (typeof SIGNER_PATHS)[number],
    handler: Middleware,
  ) => {
    const chain = [
      goLivepeerErrors(),
      allowOnly(method),
      // Who may call: declared and enforced like every REST route (platform/authz); a refusal
      // is rendered in go-livepeer's shape by goLivepeerErrors above.
      ...declare(router, { method: method.toLowerCase(), path, access: SIGNER_ACCESS }),
      spendCheck(deps),
      handler,
    ];
    chains.set(path, compose(chain));
    router.all([path, `${LEGACY_PREFIX}${path}`], ...chain);
  };

  // go-livepeer sends no body; Livepeer's Python client POSTs `{}`: the body is never read.
  route('POST', '/sign-orchestrator-info', async function signOrchestratorInfo(ctx) {
    ctx.body = await deps.service.signOrchestratorInfo();
  });

  const orchestrators = createBase64Memo(ORCHESTRATOR_MEMO);
  route('POST', '/generate-live-payment', async function generateLivePayment(ctx) {
    const request = parseLivePaymentRequest(await readJson(ctx), orchestrators);
    const caller = (ctx.state as SignerState).principal;
    // A shared gateway credential pays with the stream owner's account: found from the
    // Tollhouse-Stream header and spend-checked here, still before anything is signed.
    const payer = await deps.payers.payerOf(caller, ctx.get(STREAM_HEADER).trim());
    if (payer.streamId !== null) await deps.spend.assertMaySpend(payer.principal);
    const result = await deps.service.generateLivePayment(payer.principal, request, {
      caller,
      streamId: payer.streamId,
    });
    // A view of the bytes, not a copy.
    const b64 = (bytes: Uint8Array) =>
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      payment: b64(result.payment),
      segCreds: b64(result.segCreds),
      state: { State: b64(result.state.state), Sig: b64(result.state.sig) },
    };
  });

  route('GET', '/discover-orchestrators', function discoverOrchestrators(ctx) {
    // Only the configured list is known: no capabilities are claimed, so `caps` filters nothing.
    if (deps.orchestrators.length === 0) {
      throw new SignerNotReady('no orchestrators known (SIGNER_ORCHESTRATORS is not set)');
    }
    ctx.body = deps.orchestrators.map((address) => ({ address, score: 1, capabilities: [] }));
  });

  const pay = chains.get('/generate-live-payment')!;
  const payPaths = new Set(['/generate-live-payment', `${LEGACY_PREFIX}/generate-live-payment`]);
  return {
    claims: (method, path) => method === 'POST' && payPaths.has(path),
    answer: function generateLivePaymentDirect(ctx, next) {
      // What the router would have set: the metrics' route label is the path matched.
      ctx._matchedRoute = ctx.path;
      return pay(ctx, next);
    },
  };
}

/**
 * The end of the signer-only listener's chain (SIGNER_PORT): anything its routes did not
 * answer is a 404 in go-livepeer's shape, since only signer clients talk to that port.
 */
export function signerNotFound(): Middleware {
  const errors = goLivepeerErrors();
  return async function signerNotFound(ctx: Context, next: Next) {
    await next();
    if (ctx.status !== 404 || ctx.body != null) return;
    await errors(ctx, () => {
      throw new AppError(404, 'NotFound', `no route for ${ctx.method} ${ctx.path}`);
    });
  };
}

/** A wrong method is go-livepeer's 405 (its mux answers `Method Not Allowed`), before auth. */
function allowOnly(method: 'GET' | 'POST'): Middleware {
  const allowed = method === 'GET' ? ['GET', 'HEAD'] : [method];
  return async function allowOnly(ctx: Context, next: Next) {
    if (!allowed.includes(ctx.method)) {
      throw new AppError(405, 'MethodNotAllowed', `${ctx.method} is not allowed; use ${method}`, {
        headers: { Allow: allowed.join(', ') },
      });
    }
    await next();
  };
}

/** Renders every refusal of these routes as go-livepeer does: `{"error":{"message":…}}`. */
function goLivepeerErrors(): Middleware {
  return async function goLivepeerErrors(ctx: Context, next: Next) {
    try {
      // The platform's string rule, here so that its refusal is in go-livepeer's shape too.
      assertCleanInput(ctx);
      await next();
    } catch (thrown) {
      const state = ctx.state as RequestState;
      const error = toSignerError(thrown);
      // Sender-check failures are 500s whose reason is safe and useful to the gateway operator.
      const show = error.expose || error instanceof RemoteSignerError;
      if (error.status >= 500) state.log.error({ err: thrown }, error.message);
      else state.log.info({ status: error.status, message: error.message }, 'signer refused');
      ctx.status = error.status;
      for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
      ctx.body = {
        error: {
          message: show
            ? error.message
            : `internal error; quote request id ${state.requestId} when reporting it`,
        },
      };
    }
  };
}

function toSignerError(thrown: unknown): AppError {
  if (thrown instanceof AppError) return thrown;
  const status = (thrown as { status?: unknown }).status;
  if (status === 413) {
    return new AppError(
      413,
      'PayloadTooLarge',
      `request body is larger than ${SIGNER_BODY_LIMIT_BYTES} bytes`,
    );
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new BadSignerRequest('the request body could not be read', { cause: thrown });
  }
  return new AppError(500, 'InternalServerError', 'unhandled error', { cause: thrown });
}

/** Bearer credential with the `signer` scope, then billing's spend check: before any signing. */
/**
 * Browser keys ship in web pages: they never reach the signer. Everyone else needs the
 * `signer` scope; an app end user's token pays as that user (SDK clients calling directly).
 */
export const SIGNER_ACCESS: Access = {
  kinds: ['operator', 'account', 'app_client', 'app_end_user', 'derived'],
  scope: 'signer',
  note: "go-livepeer remote-signer protocol; errors in go-livepeer's shape; spend is checked before anything is signed",
};

function spendCheck(deps: RemoteSignerRouteDeps): Middleware {
  return async function signerSpend(ctx: Context, next: Next) {
    const principal = (ctx.state as SignerState).principal;
    // A shared gateway credential's own account pays for nothing: each payment is checked
    // against its stream owner's spend instead (generate-live-payment above).
    if (!deps.payers.isShared(principal)) await deps.spend.assertMaySpend(principal);
    await next();
  };
}

async function readJson(ctx: Context): Promise<unknown> {
  const text = await coBody.text(ctx.req, { limit: SIGNER_BODY_LIMIT_BYTES, encoding: 'utf8' });
  try {
    return parseJsonExact(text);
  } catch {
    throw new BadSignerRequest('request body is not valid JSON');
  }
}

/** The reviver's `context.source` keeps int64 values (inPixels) exact. */
const exactIntegers = (_key: string, value: unknown, context?: { source?: string }) =>
  typeof value === 'number' && context?.source !== undefined && /^-?\d+$/.test(context.source)
    ? BigInt(context.source)
    : value;

/**
 * JSON.parse with every integer written without a fraction or exponent as a bigint (exact
 * int64s), other numbers as numbers. A reviver does that, but it doubles the cost of parsing a
 * payment's body; so the body is parsed plainly, and when every number in the text is written
 * as an integer and is a safe one (a payment's inPixels usually is), those numbers become
 * bigints in place: the same value the reviver gives. Otherwise the reviver parses it.
 * test/signer/remote-fastpaths.test.ts compares both on hostile bodies.
 */
export function parseJsonExact(text: string): unknown {
  const plain: unknown = JSON.parse(text);
  if (onlyIntegerNumbers(text)) {
    const converted = safeIntegersToBigInt(plain);
    if (converted !== undefined) return converted;
  }
  return JSON.parse(text, exactIntegers);
}

/** Whether no number in `text` (valid JSON) has a fraction or an exponent. */
function onlyIntegerNumbers(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote, one not escaped by an odd run of backslashes.
      let end = text.indexOf('"', i + 1);
      while (end !== -1 && escaped(text, end)) end = text.indexOf('"', end + 1);
      if (end === -1) return false;
      i = end;
    } else if (c === 0x2e || c === 0x65 || c === 0x45) {
      // '.', 'e' or 'E' outside strings: after a digit it is a number's fraction or exponent
      // (`true` and `false` have an 'e' after a letter).
      const before = text.charCodeAt(i - 1);
      if (before >= 0x30 && before <= 0x39) return false;
    }
  }
  return true;
}

function escaped(text: string, quote: number): boolean {
  let backslashes = 0;
  for (let j = quote - 1; text.charCodeAt(j) === 0x5c; j--) backslashes++;
  return backslashes % 2 === 1;
}

/** Numbers → bigints in place; undefined when one is not a safe integer (the reviver decides). */
function safeIntegersToBigInt(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = safeIntegersToBigInt(value[i]);
      if (v === undefined) return undefined;
      value[i] = v;
    }
    return value;
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    const v = safeIntegersToBigInt(object[key]);
    if (v === undefined) return undefined;
    // An own data property (JSON.parse made it): assignment replaces it, `__proto__` included.
    object[key] = v;
  }
  return object;
}

/** Go's encoding/json: the exact key wins, else the last key equal ignoring case. */
function field(object: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(object, name)) return object[name];
  let found: unknown;
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(object)) if (key.toLowerCase() === lower) found = value;
  return found;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// Orchestrator infos remembered by their base64 text (a few KB each: ~10 MB at most).
const ORCHESTRATOR_MEMO = 2_000;

/**
 * Base64 texts already decoded, and their bytes. A stream sends the same OrchestratorInfo
 * text with every payment until its session is refreshed; the same text gives back the same
 * bytes object, so the service's offer cache (./payment.ts OfferCache) knows it too. Only
 * texts that passed the check are kept. Bounded: past `max` texts the map starts over.
 */
export interface Base64Memo {
  get(text: string): Uint8Array | undefined;
  set(text: string, bytes: Uint8Array): void;
}

export function createBase64Memo(max: number): Base64Memo {
  const known = new Map<string, Uint8Array>();
  return {
    get: (text) => known.get(text),
    set(text, bytes) {
      if (known.size >= max) known.clear();
      known.set(text, bytes);
    },
  };
}

function base64Field(
  object: Record<string, unknown>,
  name: string,
  memo?: Base64Memo,
): Uint8Array | null {
  const value = field(object, name);
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') {
    const known = memo?.get(value);
    if (known !== undefined) return known;
    // Text that is exactly what Node encodes its bytes to is canonical base64, which the
    // check below accepts: one decode and one encode instead of a regular expression over a
    // State of hundreds of characters.
    const bytes = Buffer.from(value, 'base64');
    if (bytes.toString('base64') === value) {
      memo?.set(value, bytes);
      return bytes;
    }
  }
  // Go's base64 decoding of []byte skips \r and \n.
  if (typeof value !== 'string' || !BASE64.test(value.replace(/[\r\n]/g, ''))) {
    throw new BadSignerRequest(`${name} must be base64`);
  }
  const bytes = Buffer.from(value, 'base64');
  memo?.set(value, bytes);
  return bytes;
}

function stringField(object: Record<string, unknown>, name: string): string {
  const value = field(object, name);
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new BadSignerRequest(`${name} must be a string`);
  return value;
}

function objectField(
  object: Record<string, unknown>,
  name: string,
): Record<string, unknown> | null {
  const value = field(object, name);
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new BadSignerRequest(`${name} must be an object`);
  }
  return value as Record<string, unknown>;
}

const INT64_MAX = (1n << 63n) - 1n;

/** `orchestrators`: a memo of decoded orchestrator infos (see createBase64Memo). */
export function parseLivePaymentRequest(
  body: unknown,
  orchestrators?: Base64Memo,
): LivePaymentRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadSignerRequest('request body must be a JSON object');
  }
  const o = body as Record<string, unknown>;
  const state = objectField(o, 'state') ?? {};
  const inPixels = field(o, 'inPixels') ?? 0n;
  if (typeof inPixels !== 'bigint' || inPixels < -INT64_MAX - 1n || inPixels > INT64_MAX) {
    throw new BadSignerRequest('inPixels must be a 64-bit integer');
  }
  // go-livepeer (server/remote_signer.go parseRemotePaymentMaxPrice): a positive big.Rat, the
  // currency "wei" and the unit compared trimmed and lowercased; the unit is checked against
  // the job type by the service.
  let maxPrice: LivePaymentRequest['maxPrice'] = null;
  const mp = objectField(o, 'maxPrice');
  if (mp !== null) {
    const raw = field(mp, 'price');
    const text =
      typeof raw === 'bigint'
        ? raw.toString()
        : typeof raw === 'string'
          ? raw
          : typeof raw === 'number'
            ? String(raw)
            : null;
    const price: Rational | null = text === null ? null : parseGoRat(text);
    if (price === null || price.num <= 0n) {
      throw new BadSignerRequest('maxPrice.price must be a positive decimal');
    }
    if (stringField(mp, 'currency').trim().toLowerCase() !== 'wei') {
      throw new BadSignerRequest('maxPrice.currency must be wei');
    }
    maxPrice = { price, unit: stringField(mp, 'unit').trim().toLowerCase() };
  }
  return {
    state: { state: base64Field(state, 'State'), sig: base64Field(state, 'Sig') },
    orchestrator: base64Field(o, 'orchestrator', orchestrators) ?? new Uint8Array(0),
    manifestId: stringField(o, 'ManifestID'),
    app: stringField(o, 'app'),
    inPixels,
    type: stringField(o, 'type'),
    maxPrice,
    capabilities: base64Field(o, 'capabilities'),
  };
}
