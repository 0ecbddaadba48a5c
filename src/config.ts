// Every setting tollhouse reads, from the environment, validated once. This is the only file
// that touches process.env: the rest of the service receives frozen slices of `Config`.
//
// Rules (documented in docs/configuration.md, which is generated from SETTINGS below):
// * an empty variable counts as unset;
// * a secret setting may instead be read from a file named by `<NAME>_FILE` (Docker/Kubernetes
//   secrets); setting both is an error;
// * every bad setting is reported at once, by name, with what it expects — never a stack trace,
//   and never the value of a secret.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS } from './platform/log.ts';
import type { LogLevel } from './platform/log.ts';

export type { LogLevel };

// A secret must carry at least 256 bits of entropy when hex-encoded (64 chars) or 32 bytes
// of base64 (44 chars); 32 characters is the floor we accept for hand-picked passphrases.
const MIN_SECRET_LENGTH = 32;

function integer(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, `expected an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, `expected an integer from ${min} to ${max}`)
        .max(max, `expected an integer from ${min} to ${max}`),
    );
}

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), {
    error: 'expected an http:// or https:// URL',
  })
  .transform((v) => v.replace(/\/+$/, ''));

const postgresUrl = z
  .string()
  .refine((v) => URL.canParse(v) && /^postgres(ql)?:$/.test(new URL(v).protocol), {
    error: 'expected a postgres:// or postgresql:// URL',
  });

// Wei amounts are decimal strings of at most 78 digits (numeric(78,0) holds every uint256).
const wei = z
  .string()
  .regex(/^\d{1,78}$/, 'expected an amount in wei (a whole number, no decimal point)')
  .transform((v) => BigInt(v));

const ethAddress = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'expected an Ethereum address (0x and 40 hex digits)');

// Arbitrum One's Livepeer Controller (LIVEPEER.md §4).
/** A comma-separated list: items trimmed, empty ones dropped (`a, b,` → ['a', 'b']). */
const commaList = z.string().transform((v) =>
  v
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== ''),
);
/** Decimal dollars (at most 6 decimals) → integer micro-dollars, exactly. */
function usdMicros(value: string): bigint {
  const [whole, frac = ''] = value.split('.');
  return BigInt(whole!) * 1_000_000n + BigInt(frac.padEnd(6, '0'));
}
const usdAmount = z
  .string()
  .regex(/^\d{1,12}(\.\d{1,6})?$/, 'expected dollars such as 5 or 0.25')
  .transform(usdMicros);
const ARBITRUM_CONTROLLER = '0xD8E8328501E9645d16Cf49539efC04f734606ee4';
// GATEWAY_PRICES: wei as decimal strings (never JS numbers), per pipeline with optional
// per-model overrides; go-livepeer prices are price_per_unit wei per pixels_per_unit units.
const weiText = z
  .string()
  .regex(/^(0|[1-9]\d{0,77})$/)
  .transform(BigInt);
const gatewayPrice = z.strictObject({
  price_per_unit: weiText,
  pixels_per_unit: weiText.refine((v) => v > 0n),
});
const gatewayPrices = z.record(
  z.string().min(1),
  gatewayPrice.extend({ models: z.record(z.string().min(1), gatewayPrice).optional() }),
);
export type GatewayPrices = z.output<typeof gatewayPrices>;

// UPSTREAM_OIDC_PROVIDERS: the OpenID providers accounts may sign in with (issue #18 item 3).
const upstreamProvider = z.strictObject({
  // Stored with every linked identity and part of the callback URL: never renamed.
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
  name: z.string().trim().min(1).max(60),
  issuer: httpUrl,
  client_id: z.string().min(1).max(500),
  client_secret: z.string().min(1).max(2000),
  scopes: z
    .string()
    .regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/)
    .refine((v) => v.split(' ').includes('openid'))
    .optional(),
});
const upstreamProviders = z
  .array(upstreamProvider)
  .max(20)
  .refine((list) => new Set(list.map((p) => p.id)).size === list.length);
export type UpstreamProviderSetting = z.output<typeof upstreamProvider>;

/** The sections of the configuration reference (docs/configuration.md), in its order. */
export const SECTIONS = {
  http: 'HTTP',
  database: 'Database and secrets',
  log: 'Logs and metrics',
  keys: 'API keys',
  identity: 'Identity (OpenID Connect)',
  onboarding: 'Sign-up and e-mail',
  gateway: 'Front door',
  billing: 'Billing and Stripe',
  signer: 'Payment signer',
  remoteSigner: 'Remote signer (go-livepeer protocol)',
  notifications: 'Webhooks and alerts',
} as const;
export type Section = keyof typeof SECTIONS;

export interface Setting {
  section: Section;
  /** Default as the operator would type it; absent means "unset" is meaningful. */
  default?: string;
  /** A default computed from other settings, as documented (the reader computes it). */
  shownDefault?: string;
  /** May be given as `<NAME>_FILE`; its value is never echoed in errors or logs. */
  secret?: boolean;
  doc: string;
  schema: z.ZodType<unknown, string>;
}

/**
 * Every setting, keyed by its environment variable, as documented data: docs/configuration.md
 * and .env.example are generated from it (`npm run docs:config`), and the Docker wiring test
 * checks the compose file against it. A setting is named once, here; `Config` is built from the
 * values these schemas parse, so a misspelt name is a type error.
 */
/**
 * The embedded data folder the environment names, or null with DATABASE_URL. Read without
 * parsing the whole configuration (no secret generated, no setting checked), so a CLI command
 * can look for a running server's control socket before anything else.
 */
export function embeddedDataDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.DATABASE_URL !== undefined && env.DATABASE_URL !== '') return null;
  const dir = env.TOLLHOUSE_DATA_DIR;
  return path.resolve(dir === undefined || dir === '' ? SETTINGS.TOLLHOUSE_DATA_DIR.default : dir);
}

export const SETTINGS = {
  PORT: {
    section: 'http',
    default: '8080',
    doc: 'TCP port of the one HTTP listener (API, OIDC, front door, signer, health, metrics).',
    schema: integer(1, 65535),
  },
  HOST: {
    section: 'http',
    default: '0.0.0.0',
    doc: 'Address to listen on. Use 127.0.0.1 to accept local connections only.',
    schema: z.string().min(1),
  },
  PUBLIC_URL: {
    section: 'http',
    shownDefault: 'http://localhost:$PORT',
    doc: 'The URL clients use to reach tollhouse; the OIDC issuer is `${PUBLIC_URL}/oidc`.',
    schema: httpUrl,
  },
  TRUST_PROXY: {
    section: 'http',
    default: 'false',
    doc: 'Trust X-Forwarded-For/-Proto from a reverse proxy in front of tollhouse. Required with an https PUBLIC_URL (`serve` refuses to start without it).',
    schema: boolean,
  },
  HTTP_BODY_LIMIT_BYTES: {
    section: 'http',
    default: '1048576',
    doc: 'Largest JSON request body the REST API accepts (bytes); larger bodies get 413.',
    schema: integer(1024, 100 * 1024 * 1024),
  },
  SHUTDOWN_TIMEOUT_SECONDS: {
    section: 'http',
    default: '8',
    doc: 'On SIGTERM/SIGINT, how long in-flight requests may finish before connections are closed.',
    // Kept below 10 s so the whole shutdown, including flushing and closing the database, fits
    // in the 10 s that orchestrators (Kubernetes' default grace is 30 s, Docker's 10 s) allow.
    schema: integer(0, 9),
  },
  DATABASE_URL: {
    section: 'database',
    secret: true,
    doc: 'PostgreSQL connection URL. Unset: embedded PGlite stored under TOLLHOUSE_DATA_DIR (one process only).',
    schema: postgresUrl,
  },
  DATABASE_POOL_MAX: {
    section: 'database',
    default: '10',
    doc: 'Maximum PostgreSQL connections per process.',
    schema: integer(1, 1000),
  },
  TOLLHOUSE_DATA_DIR: {
    section: 'database',
    default: './.tollhouse',
    doc: 'Folder for the embedded database and the generated secret (embedded mode only).',
    schema: z.string().min(1),
  },
  TOLLHOUSE_SECRET: {
    section: 'database',
    secret: true,
    doc: 'Key that encrypts secrets at rest (at least 32 characters, e.g. `openssl rand -hex 32`). Required with DATABASE_URL; generated into the data folder in embedded mode.',
    schema: z.string().min(MIN_SECRET_LENGTH, `expected at least ${MIN_SECRET_LENGTH} characters`),
  },
  LOG_LEVEL: {
    section: 'log',
    default: 'info',
    doc: `Log threshold: ${LOG_LEVELS.join(', ')}. Logs are JSON lines: \`serve\` writes them to stdout; one-shot commands write only warnings and errors, to stderr (info with \`--verbose\`).`,
    schema: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
  },
  METRICS_TOKEN: {
    section: 'log',
    secret: true,
    doc: 'If set, GET /metrics requires `Authorization: Bearer <token>`.',
    schema: z.string().min(1),
  },
  API_KEYS_CACHE_MAX: {
    section: 'keys',
    default: '100000',
    doc: 'Most API keys each process keeps verified in memory (about 1 KB each); colder keys cost one query.',
    schema: integer(100, 10_000_000),
  },
  API_KEYS_FLUSH_SECONDS: {
    section: 'keys',
    default: '30',
    doc: "How often each process writes API keys' last-use times (batched, not per request).",
    schema: integer(1, 3600),
  },
  ACCESS_TOKEN_TTL_SECONDS: {
    section: 'identity',
    default: '900',
    doc: 'Lifetime of OIDC access tokens (JWTs, not revocable, so keep it short). Refresh tokens last 14 days.',
    schema: integer(60, 86_400),
  },
  LOGIN_ATTEMPTS_PER_MINUTE: {
    section: 'identity',
    default: '10',
    doc: 'Sign-in attempts allowed per email address per minute (per process).',
    schema: integer(1, 100_000),
  },
  LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: {
    section: 'identity',
    default: '30',
    doc: 'Sign-in attempts allowed per client IP per minute (per process).',
    schema: integer(1, 100_000),
  },
  REQUIRE_MFA_FOR_ADMINS: {
    section: 'identity',
    default: 'false',
    doc: 'When true, an operator account (`is_admin`, the accounts that get the `admin` scope) that signs in without a second factor must enrol one (TOTP or a passkey) before the sign-in finishes. See docs/second-factor.md.',
    schema: boolean,
  },
  TOKEN_REQUESTS_PER_IP_PER_MINUTE: {
    section: 'identity',
    default: '6000',
    doc: 'Requests to the OIDC token and device endpoints allowed per client IP per minute (per process); 0 disables the limit.',
    schema: integer(0, 10_000_000),
  },
  TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE: {
    section: 'identity',
    default: '6000',
    doc: 'Requests to the OIDC token and device endpoints allowed per authenticated client (client_id) per minute (per process); 0 disables the limit.',
    schema: integer(0, 10_000_000),
  },
  SIGNUP_POLICY: {
    section: 'onboarding',
    default: 'closed',
    doc: 'Who may create an account: `closed` (operators only), `invite` (an invitation link), or `open` (anyone, see SIGNUP_EMAIL_DOMAINS). See docs/onboarding.md.',
    schema: z.enum(['closed', 'invite', 'open'], { error: 'expected closed, invite or open' }),
  },
  SIGNUP_EMAIL_DOMAINS: {
    section: 'onboarding',
    doc: 'With SIGNUP_POLICY=open: comma-separated e-mail domains allowed to sign up (`example.com, example.org`). Unset: any domain.',
    schema: commaList.pipe(
      z
        .array(
          z
            .string()
            .regex(/^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/, 'expected domain names such as example.com'),
        )
        .transform((domains) => domains.map((d) => d.toLowerCase())),
    ),
  },
  SMTP_URL: {
    section: 'onboarding',
    secret: true,
    doc: 'Mail server for verification, password reset and invitation e-mails: `smtps://user:password@host:465` or `smtp://host:587` (STARTTLS when offered). Unset: no e-mail; operators get links from the command line.',
    schema: z.string().refine((v) => URL.canParse(v) && /^smtps?:$/.test(new URL(v).protocol), {
      error: 'expected an smtp:// or smtps:// URL',
    }),
  },
  MAIL_FROM: {
    section: 'onboarding',
    doc: 'Sender of the e-mails, e.g. `Example API <no-reply@example.com>`. Required with SMTP_URL.',
    schema: z.string().min(3).max(320),
  },
  SIGNUP_ATTEMPTS_PER_IP_PER_HOUR: {
    section: 'onboarding',
    default: '20',
    doc: 'Sign-up, forgot-password and invitation-accept forms sent per client IP per hour (per process).',
    schema: integer(1, 1_000_000),
  },
  EMAILS_PER_ADDRESS_PER_HOUR: {
    section: 'onboarding',
    default: '5',
    doc: 'Sign-up and password-reset e-mails sent to one address per hour (per process): a form cannot be used to flood a mailbox.',
    schema: integer(1, 1000),
  },
  SIGNUP_OWNER_INVITATIONS: {
    section: 'onboarding',
    default: 'false',
    doc: 'With SIGNUP_POLICY=invite: whether account holders with a confirmed address may invite others too (`POST /v1/invitations`, the console). Their invitations go only by e-mail, so SMTP_URL is needed.',
    schema: boolean,
  },
  OWNER_INVITATIONS_PER_ACCOUNT_PER_DAY: {
    section: 'onboarding',
    default: '10',
    doc: 'Invitations one account holder may send in 24 hours (counted in the database, so across replicas). Operators are not limited.',
    schema: integer(1, 10_000),
  },
  ACCOUNT_TOKENS_RETENTION_DAYS: {
    section: 'onboarding',
    default: '30',
    doc: 'Used or expired e-mail links (verification, reset, invitation) are deleted this many days after they were used or expired. Until then they stay for support questions.',
    schema: integer(1, 3650),
  },
  UPSTREAM_OIDC_PROVIDERS: {
    section: 'onboarding',
    secret: true,
    doc: 'OpenID Connect providers accounts may sign in with, as a JSON list: `[{"id":"google","name":"Google","issuer":"https://accounts.google.com","client_id":"…","client_secret":"…"}]`; optional `"scopes"` (default `openid email profile`). Register `<PUBLIC_URL>/upstream/<id>/callback` at each provider. Keep each `id`: linked accounts refer to it. Unset: no upstream sign-in. See docs/upstream-sign-in.md.',
    schema: z.string().transform((raw, ctx) => {
      try {
        return upstreamProviders.parse(JSON.parse(raw));
      } catch {
        ctx.addIssue({
          code: 'custom',
          message:
            'expected a JSON list of {"id": "a-z0-9-", "name", "issuer": "https://…", "client_id", "client_secret", "scopes"?} with distinct ids',
        });
        return z.NEVER;
      }
    }),
  },
  GATEWAY_URL: {
    section: 'gateway',
    doc: 'The go-livepeer gateway (broadcaster mode) that the front door forwards AI requests to. Unset: the front door is off.',
    schema: httpUrl,
  },
  GATEWAY_CONNECT_TIMEOUT_MS: {
    section: 'gateway',
    default: '5000',
    doc: 'Front door: longest wait for a TCP connection to GATEWAY_URL; then 504.',
    schema: integer(100, 600_000),
  },
  GATEWAY_RESPONSE_TIMEOUT_MS: {
    section: 'gateway',
    default: '600000',
    doc: 'Front door: longest wait for the response headers, and between two body chunks, from GATEWAY_URL; then 504 (or the stream is cut). Image-to-video can take minutes.',
    schema: integer(100, 3_600_000),
  },
  GATEWAY_JSON_LIMIT_BYTES: {
    section: 'gateway',
    default: '1048576',
    doc: 'Front door: largest JSON request body (text-to-image, llm, text-to-speech, live); it is read to compute units, larger bodies get 413. Multipart uploads are streamed and not limited here.',
    schema: integer(1024, 100 * 1024 * 1024),
  },
  GATEWAY_PRICES: {
    section: 'gateway',
    doc: 'Front door prices as JSON: `{"text-to-image":{"price_per_unit":"<wei>","pixels_per_unit":"1","models":{"<model_id>":{…}}}}`; fee = units × price_per_unit / pixels_per_unit, rounded up. Unset or unlisted pipeline: fee 0.',
    schema: z.string().transform((raw, ctx) => {
      try {
        return gatewayPrices.parse(JSON.parse(raw));
      } catch {
        ctx.addIssue({
          code: 'custom',
          message:
            'expected JSON {"<pipeline>": {"price_per_unit": "<wei>", "pixels_per_unit": "<n>", "models": {…}}}',
        });
        return z.NEVER;
      }
    }),
  },
  GATEWAY_KEY_RATE: {
    section: 'gateway',
    default: '20',
    doc: 'Front door: requests per second each API key or token may make, for the whole cluster (token bucket); the default under plans and per-key overrides. 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  GATEWAY_KEY_BURST: {
    section: 'gateway',
    doc: 'Front door: token-bucket size for each API key or token (requests admitted at once after an idle spell), cluster-wide. Unset: twice the rate.',
    schema: integer(1, 2_000_000),
  },
  GATEWAY_KEY_CONCURRENCY: {
    section: 'gateway',
    default: '8',
    doc: 'Front door: requests each API key or token may have in flight at once, cluster-wide (each replica enforces its share, rounded up); the default under plans and overrides. 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  GATEWAY_ACCOUNT_RATE: {
    section: 'gateway',
    default: '50',
    doc: 'Front door: requests per second per account, all its keys together, cluster-wide; the default under plans. 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  GATEWAY_ACCOUNT_BURST: {
    section: 'gateway',
    doc: 'Front door: token-bucket size for each account (requests admitted at once after an idle spell), cluster-wide. Unset: twice the rate.',
    schema: integer(1, 2_000_000),
  },
  GATEWAY_ACCOUNT_CONCURRENCY: {
    section: 'gateway',
    default: '32',
    doc: 'Front door: requests per account in flight at once, cluster-wide; the default under plans. 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  GATEWAY_ANONYMOUS_ACCOUNT: {
    section: 'gateway',
    doc: 'Front door anonymous mode (a community gateway): requests without Authorization are accepted and metered to this account (acct_…, must exist). Unset: a credential is required.',
    schema: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected an account id (acct_…)'),
  },
  GATEWAY_ANONYMOUS_RATE: {
    section: 'gateway',
    default: '1',
    doc: "Anonymous mode: requests per second per client IP, cluster-wide; the default under the anonymous account's plan.",
    schema: integer(1, 1_000_000),
  },
  GATEWAY_ANONYMOUS_BURST: {
    section: 'gateway',
    doc: 'Front door: token-bucket size for each client IP in anonymous mode (requests admitted at once after an idle spell), cluster-wide. Unset: twice the rate.',
    schema: integer(1, 2_000_000),
  },
  GATEWAY_ANONYMOUS_CONCURRENCY: {
    section: 'gateway',
    default: '1',
    doc: "Anonymous mode: requests in flight per client IP, cluster-wide; the default under the anonymous account's plan.",
    schema: integer(1, 1_000_000),
  },
  GATEWAY_LIMITS_SCOPE: {
    section: 'gateway',
    default: 'cluster',
    doc: 'Front door limits: `cluster` — every replica writes a heartbeat to PostgreSQL and enforces 1/N of each limit, N being the live replicas; `replica` — each replica enforces the whole limit on its own (N replicas allow N×).',
    schema: z.enum(['cluster', 'replica'], { error: 'expected cluster or replica' }),
  },
  GATEWAY_REPLICA_HEARTBEAT_MS: {
    section: 'gateway',
    default: '2000',
    doc: 'Cluster limits: how often each replica writes its heartbeat and re-counts the live replicas.',
    schema: integer(100, 60_000),
  },
  GATEWAY_REPLICA_TTL_MS: {
    section: 'gateway',
    default: '6000',
    doc: "Cluster limits: a replica not seen for this long no longer counts; a dead replica's share returns to the others after this. At least twice the heartbeat.",
    schema: integer(200, 600_000),
  },
  LIVEPEER_WEBHOOK_SECRET: {
    section: 'gateway',
    secret: true,
    doc: 'Shared secret go-livepeer sends to /webhooks/livepeer/* (as `Authorization: Bearer <secret>`, `x-api-key`, or `?secret=` in the webhook URL). Unset: the webhooks answer 503.',
    schema: z.string().min(16, 'expected at least 16 characters'),
  },
  BILLING_ETH_USD_RATE: {
    section: 'billing',
    doc: 'Fixed ETH/USD rate (dollars per ether, e.g. `3150.25`) used to price wei in USD. Wins over BILLING_ETH_USD_FEED. Unset with no feed: statements cannot be closed (no built-in price).',
    schema: z
      .string()
      .regex(/^\d{1,12}(\.\d{1,18})?$/, 'expected a decimal number such as 3150.25'),
  },
  BILLING_ETH_USD_FEED: {
    section: 'billing',
    doc: 'Chainlink ETH/USD price feed (aggregator address) read through ETH_RPC_URL with `latestRoundData()`.',
    schema: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x-prefixed 20-byte address'),
  },
  BILLING_RATE_MAX_AGE_SECONDS: {
    section: 'billing',
    default: '3600',
    doc: "A Chainlink answer updated longer ago than this is refused as stale (ETH/USD's heartbeat on Ethereum mainnet is 1 hour).",
    schema: integer(60, 7 * 24 * 3600),
  },
  BILLING_SPEND_REFRESH_SECONDS: {
    section: 'billing',
    default: '5',
    doc: 'How often each process re-reads month-to-date spend for the spend gate; caps can be overshot by what a principal spends in this time.',
    schema: integer(1, 3600),
  },
  BILLING_AUTO_CLOSE: {
    section: 'billing',
    default: 'true',
    doc: 'Close each month automatically BILLING_CLOSE_AFTER_HOURS after it ends (one replica does it). Off: only `tollhouse billing close`.',
    schema: boolean,
  },
  BILLING_CLOSE_AFTER_HOURS: {
    section: 'billing',
    default: '6',
    doc: 'Hours after a month ends before the scheduled close, so usage still in transit lands in its own month.',
    schema: integer(0, 24 * 27),
  },
  BILLING_PREPAID_RESERVE_USD: {
    section: 'billing',
    default: '0',
    doc: "Prepaid accounts are refused once their spendable balance (ledger balance minus this month's usage at cost) is at or below this many dollars. Raise it to keep the overshoot of a prepaid balance at zero: set it to what your traffic spends in BILLING_SPEND_REFRESH_SECONDS plus 0.1 s (docs/metering-and-billing.md, the in-flight bound).",
    schema: usdAmount,
  },
  BILLING_TOPUP_AMOUNTS_USD: {
    section: 'billing',
    default: '10,25,50,100',
    doc: 'The amounts (dollars, whole cents) a customer may add as prepaid credit through Stripe Checkout ("Add credit").',
    schema: commaList.pipe(
      z
        .array(
          z
            .string()
            .regex(/^\d{1,9}(\.\d{1,2})?$/, 'expected dollar amounts such as 10 or 25.50')
            .transform(usdMicros)
            .refine((v) => v > 0n, 'expected amounts above 0'),
        )
        .min(1, 'expected at least one amount'),
    ),
  },
  BILLING_SPEND_ALERT_PERCENTS: {
    section: 'billing',
    default: '50,80,100',
    doc: 'Percentages of a monthly spend cap that publish a `spend.threshold_reached` event (once per cap, month and percentage).',
    schema: commaList.pipe(z.array(integer(1, 1000)).min(1, 'expected at least one percentage')),
  },
  BILLING_RECHARGE_MAX_ATTEMPTS: {
    section: 'billing',
    default: '5',
    doc: 'Declined auto-recharges are retried with backoff (30 s doubling, at most 6 h) this many times in all, then given up until the next credit.',
    schema: integer(1, 20),
  },
  BILLING_PREPAID_INTERVAL_SECONDS: {
    section: 'billing',
    default: '30',
    doc: 'How often each replica looks at prepaid balances and spend caps: publishes balance and spend alerts, opens and charges auto-recharges.',
    schema: integer(1, 3600),
  },
  STRIPE_SECRET_KEY: {
    section: 'billing',
    secret: true,
    doc: 'Stripe secret API key. Set: closed statements are pushed to Stripe as invoices (`tollhouse billing stripe-sync`, and every few minutes).',
    schema: z.string().min(1),
  },
  STRIPE_WEBHOOK_SECRET: {
    section: 'billing',
    secret: true,
    doc: 'Signing secret (`whsec_…`) of the Stripe webhook endpoint `POST /webhooks/stripe`.',
    schema: z.string().min(1),
  },
  STRIPE_API_BASE: {
    section: 'billing',
    doc: 'Another base URL for the Stripe API (a proxy, or a local fake in tests). Unset: https://api.stripe.com.',
    schema: httpUrl,
  },
  STRIPE_FINALIZE_INVOICES: {
    section: 'billing',
    default: 'false',
    doc: 'Finalize each Stripe invoice after its items are added (else left as a draft for review).',
    schema: boolean,
  },
  STRIPE_DAYS_UNTIL_DUE: {
    section: 'billing',
    default: '30',
    doc: 'Days a customer has to pay a Stripe invoice.',
    schema: integer(1, 365),
  },
  ETH_RPC_URL: {
    section: 'signer',
    // Hosted RPC URLs embed the provider's API key.
    secret: true,
    doc: 'Ethereum JSON-RPC endpoint of the chain the Livepeer contracts live on (Arbitrum One), also used for the Chainlink ETH/USD feed. Unset: the payment signer is disabled.',
    schema: httpUrl,
  },
  LIVEPEER_CONTROLLER: {
    section: 'signer',
    default: ARBITRUM_CONTROLLER,
    doc: "Livepeer Controller contract; TicketBroker, RoundsManager and BondingManager are resolved through it. Default: Arbitrum One's.",
    schema: ethAddress,
  },
  SIGNER_KEYSTORE_FILE: {
    section: 'signer',
    doc: 'Web3 Secret Storage (v3) keystore of the signer account, as geth and go-livepeer write it (`tollhouse keystore create`). Unset: the payment signer is disabled.',
    schema: z.string().min(1),
  },
  SIGNER_PASSWORD: {
    section: 'signer',
    secret: true,
    doc: 'Password of SIGNER_KEYSTORE_FILE (prefer SIGNER_PASSWORD_FILE). The keystore is decrypted once at start.',
    schema: z.string().min(1),
  },
  SIGNER_POLL_INTERVAL_MS: {
    section: 'signer',
    default: '5000',
    doc: 'How often the signer reads the chain (new blocks, TicketBroker events for its account) and runs the funding policy.',
    schema: integer(50, 600_000),
  },
  SIGNER_REFRESH_INTERVAL_MS: {
    section: 'signer',
    default: '30000',
    doc: 'Longest time between full re-reads of the chain view (sender info, rounds, ETH balance) when no event calls for one.',
    schema: integer(50, 3_600_000),
  },
  SIGNER_TARGET_DEPOSIT_WEI: {
    section: 'signer',
    doc: 'TicketBroker deposit the funding loop keeps (wei). Unset (with SIGNER_TARGET_RESERVE_WEI): no automatic funding.',
    schema: wei,
  },
  SIGNER_TARGET_RESERVE_WEI: {
    section: 'signer',
    doc: 'TicketBroker reserve the funding loop keeps (wei).',
    schema: wei,
  },
  SIGNER_REFILL_THRESHOLD_PERCENT: {
    section: 'signer',
    default: '50',
    doc: 'Top up (both back to target, in one transaction) when the deposit or the reserve falls below this percentage of its target; also the floor for the readiness warning.',
    schema: integer(1, 100),
  },
  SIGNER_GAS_RESERVE_WEI: {
    section: 'signer',
    default: '10000000000000000',
    doc: 'ETH (wei) the funding loop and API/console funding never spend, kept for gas; below it the status warns. Default 0.01 ETH.',
    schema: wei,
  },
  SIGNER_MAX_PER_TX_WEI: {
    section: 'signer',
    doc: 'Most wei one funding transaction sends (deposit + reserve): automatic ones, and those through the API and console (not the CLI). Required with the targets.',
    schema: wei,
  },
  SIGNER_MAX_PER_DAY_WEI: {
    section: 'signer',
    doc: 'Most wei funding sends in any 24 hours (automatic, and through the API and console; CLI funding counts towards it), counted from the funding journal (so it holds across restarts and replicas). Required with the targets.',
    schema: wei,
  },
  SIGNER_FUND_FOR: {
    section: 'signer',
    doc: "Fund this address (a self-keyed go-livepeer gateway) with fundDepositAndReserveFor instead of the signer's own deposit.",
    schema: ethAddress,
  },
  SIGNER_SIGNING_THREADS: {
    section: 'signer',
    default: '0',
    doc: 'Threads that sign remote-signer payments (libsecp256k1); 0 signs on the request thread. See BENCHMARKS.md (signer) for the choice.',
    schema: integer(0, 16),
  },
  SIGNER_MAX_TICKET_EV_WEI: {
    section: 'remoteSigner',
    default: '3000000000000',
    doc: 'Largest expected value of one ticket the signer signs (go-livepeer -maxTicketEV, default 3e12 wei).',
    schema: wei,
  },
  SIGNER_MAX_TOTAL_EV_WEI: {
    section: 'remoteSigner',
    default: '20000000000000',
    doc: 'Largest expected value of one batch of tickets (go-livepeer -maxTotalEV, default 2e13 wei).',
    schema: wei,
  },
  SIGNER_DEPOSIT_MULTIPLIER: {
    section: 'remoteSigner',
    default: '1',
    doc: 'A ticket face value may be at most deposit / this (go-livepeer -depositMultiplier, default 1).',
    schema: integer(1, 1_000_000),
  },
  SIGNER_MAX_PRICE_PER_UNIT_WEI: {
    section: 'remoteSigner',
    default: '0',
    doc: 'Highest orchestrator price (wei per SIGNER_MAX_PRICE_PIXELS_PER_UNIT units) the signer pays; 0 = no ceiling (go-livepeer -maxPricePerUnit, default 0).',
    schema: wei,
  },
  SIGNER_MAX_PRICE_PIXELS_PER_UNIT: {
    section: 'remoteSigner',
    default: '1',
    doc: 'Units the SIGNER_MAX_PRICE_PER_UNIT_WEI price is for (go-livepeer -pixelsPerUnit, default 1).',
    schema: integer(1, Number.MAX_SAFE_INTEGER),
  },
  SIGNER_ORCHESTRATORS: {
    section: 'remoteSigner',
    doc: 'Comma-separated orchestrator URLs that GET /discover-orchestrators returns (go-livepeer -orchAddr). Unset: it answers 503.',
    schema: commaList.pipe(z.array(httpUrl).min(1, 'expected at least one http(s) URL')),
  },
  SIGNER_PORT: {
    section: 'remoteSigner',
    doc: 'TCP port of a second listener that serves only the go-livepeer remote-signer routes (/sign-orchestrator-info, /generate-live-payment, /discover-orchestrators) and health, so the signer can stay on a private network while the API is public. Unset: the signer answers on PORT only.',
    schema: integer(1, 65535),
  },
  SIGNER_HOST: {
    section: 'remoteSigner',
    default: '0.0.0.0',
    doc: 'Address the SIGNER_PORT listener binds (e.g. a private interface).',
    schema: z.string().min(1),
  },
  SIGNER_SHARED_CREDENTIALS: {
    section: 'remoteSigner',
    doc: 'API key ids (key_…) or OIDC client ids of shared gateway credentials: their payments are metered to, and spend-checked against, the owner of the stream the Tollhouse-Stream header names. Unset: none.',
    schema: commaList.pipe(
      z
        .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'expected key_… or client ids'))
        .min(1, 'expected at least one credential id'),
    ),
  },
  WEBHOOK_ALLOW_HTTP: {
    section: 'notifications',
    default: 'false',
    doc: 'Let webhook endpoints use plain `http://` URLs on any host. Off: https is required, except for loopback hosts (which WEBHOOK_ALLOW_PRIVATE_ADDRESSES must also allow). See docs/webhooks.md.',
    schema: boolean,
  },
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: {
    section: 'notifications',
    default: 'false',
    doc: 'Let webhooks be delivered to loopback, private (RFC 1918, ULA), link-local and other non-public addresses. Off: such URLs are refused when registered, and a host name that resolves to one is refused at delivery time (server-side request forgery).',
    schema: boolean,
  },
  WEBHOOK_TIMEOUT_SECONDS: {
    section: 'notifications',
    default: '15',
    doc: 'How long one webhook delivery attempt may take (connect, send, response headers and body) before it counts as failed and is retried.',
    schema: integer(1, 300),
  },
  WEBHOOK_DISABLE_AFTER_HOURS: {
    section: 'notifications',
    default: '120',
    doc: 'An endpoint whose deliveries have failed without a single success for this many hours (and at least WEBHOOK_DISABLE_AFTER_FAILURES times in a row) is disabled, and its owner is told by e-mail.',
    schema: integer(1, 100_000),
  },
  WEBHOOK_DISABLE_AFTER_FAILURES: {
    section: 'notifications',
    default: '10',
    doc: 'The least number of consecutive failed attempts before an endpoint can be disabled (see WEBHOOK_DISABLE_AFTER_HOURS).',
    schema: integer(1, 1_000_000),
  },
  WEBHOOK_POLL_SECONDS: {
    section: 'notifications',
    default: '5',
    doc: 'How often each replica looks for due webhook deliveries without being woken (new events wake it at once through LISTEN/NOTIFY; retries become due on this poll).',
    schema: integer(1, 3600),
  },
  ALERT_OPERATOR_EMAIL: {
    section: 'notifications',
    doc: 'Address that gets deployment-wide alerts (signer deposit, reserve and funding) by e-mail when SMTP is configured. Unset: operators get them only through webhook endpoints.',
    schema: z.email(),
  },
} as const satisfies Record<string, Setting>;

type Settings = typeof SETTINGS;
export type SettingName = keyof Settings;

/** A setting's parsed value: its schema's output, or undefined when it is unset with no default. */
type SettingValue<K extends SettingName> =
  | z.output<Settings[K]['schema']>
  | (Settings[K] extends { readonly default: string } ? never : undefined);

export type SettingValues = { readonly [K in SettingName]: SettingValue<K> };

type DeepReadonly<T> = T extends string | number | bigint | boolean | null | undefined
  ? T
  : T extends readonly (infer Item)[]
    ? readonly DeepReadonly<Item>[]
    : { readonly [K in keyof T]: DeepReadonly<T[K]> };

/** The configuration every capability receives a section of, as `buildConfig` makes it. */
export type Config = DeepReadonly<ReturnType<typeof buildConfig>>;

export interface LoadedConfig {
  config: Config;
  /** Things the operator should know, logged once the logger exists. */
  warnings: string[];
}

/**
 * Problems with serving HTTP under this configuration, which one-shot commands (that serve
 * nothing) do not have. An https PUBLIC_URL means TLS ends at a proxy in front (tollhouse
 * serves plain HTTP); without TRUST_PROXY tollhouse cannot see that the browser's connection was
 * secure, and sign-in could never set its Secure cookies.
 */
export function servingProblems(config: Config): string[] {
  const problems: string[] = [];
  if (config.http.publicUrl.startsWith('https:') && !config.http.trustProxy) {
    problems.push(
      'TRUST_PROXY: PUBLIC_URL is https but TRUST_PROXY is false. tollhouse serves plain HTTP, so TLS ends at a proxy in front of it: set TRUST_PROXY=true and have that proxy send X-Forwarded-Proto (or use an http:// PUBLIC_URL)',
    );
  }
  return problems;
}

/**
 * Whether the command line shows stack traces (LOG_LEVEL debug or trace). Read straight from
 * the environment: it must work when the rest of the configuration is what failed.
 */
export function wantsStackTraces(env: Env = process.env): boolean {
  return env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
}

/** Thrown for an invalid setup; `message` lists every problem. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

/** Reads `NAME` or `NAME_FILE` (secrets only); empty counts as unset. */
function readRaw(
  env: Env,
  name: SettingName,
  setting: Setting,
  problems: string[],
  readFile: (file: string) => string,
): string | undefined {
  const direct = env[name] === '' ? undefined : env[name];
  if (setting.secret !== true) return direct;
  const fileName = env[`${name}_FILE`] === '' ? undefined : env[`${name}_FILE`];
  if (fileName === undefined) return direct;
  if (direct !== undefined) {
    problems.push(`${name}: set ${name} or ${name}_FILE, not both`);
    return undefined;
  }
  try {
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    const value = readFile(fileName).replace(/\r?\n$/, '');
    if (value === '') {
      problems.push(`${name}_FILE: ${fileName} is empty`);
      return undefined;
    }
    return value;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    problems.push(`${name}_FILE: cannot read ${fileName} (${code})`);
    return undefined;
  }
}

/** Every setting in SETTINGS order: the record's entries with their names typed. */
export function settingEntries(): Array<[SettingName, Setting]> {
  return Object.entries(SETTINGS) as Array<[SettingName, Setting]>;
}

/** Environment → each setting's parsed value (or its default), collecting every problem. */
function readSettings(
  env: Env,
  readFile: (file: string) => string,
  problems: string[],
): SettingValues {
  const values: Record<string, unknown> = {};
  for (const [name, setting] of settingEntries()) {
    const raw = readRaw(env, name, setting, problems, readFile);
    if (raw === undefined) {
      values[name] =
        setting.default === undefined ? undefined : setting.schema.parse(setting.default);
      continue;
    }
    const parsed = setting.schema.safeParse(raw);
    if (parsed.success) {
      values[name] = parsed.data;
    } else {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      const shown = setting.secret === true ? '' : ` (got ${JSON.stringify(raw)})`;
      problems.push(`${name}: ${reason}${shown}`);
    }
  }
  // Each value was parsed by its own setting's schema (or is undefined with no default), which
  // is what SettingValues says; this is the one place the record's types meet the environment.
  return values as SettingValues;
}

// Not settings: how often billing's background work runs. A full re-read of the month's
// rollups every 10 minutes picks up late events for older hours; the scheduled close and the
// Stripe sync look for work every 5 minutes.
const SPEND_FULL_RELOAD_MS = 600_000;
const BILLING_JOB_INTERVAL_MS = 300_000;

/** The sections each capability receives, from the parsed settings. */
function buildConfig(v: SettingValues) {
  const port = v.PORT;
  const publicUrl = v.PUBLIC_URL ?? `http://localhost:${port}`;
  return {
    http: {
      host: v.HOST,
      port,
      publicUrl,
      bodyLimitBytes: v.HTTP_BODY_LIMIT_BYTES,
      trustProxy: v.TRUST_PROXY,
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    },
    database: {
      /** null → embedded PGlite under `dataDir`. */
      url: v.DATABASE_URL ?? null,
      poolMax: v.DATABASE_POOL_MAX,
      dataDir: path.resolve(v.TOLLHOUSE_DATA_DIR),
    },
    /** Root key for encryption at rest and keyed hashes. Filled in by loadConfig in embedded
     * mode; parseConfig callers that need no secret (migrate against PGlite) still get a value
     * that fails loudly if used for encryption. */
    secret: v.TOLLHOUSE_SECRET ?? '',
    log: { level: v.LOG_LEVEL },
    metrics: { token: v.METRICS_TOKEN ?? null },
    keys: {
      cacheMax: v.API_KEYS_CACHE_MAX,
      lastUsedFlushMs: v.API_KEYS_FLUSH_SECONDS * 1000,
    },
    identity: {
      publicUrl,
      trustProxy: v.TRUST_PROXY,
      accessTokenTtlSeconds: v.ACCESS_TOKEN_TTL_SECONDS,
      loginAttemptsPerMinute: v.LOGIN_ATTEMPTS_PER_MINUTE,
      loginAttemptsPerIpPerMinute: v.LOGIN_ATTEMPTS_PER_IP_PER_MINUTE,
      requireMfaForAdmins: v.REQUIRE_MFA_FOR_ADMINS,
      tokenRequestsPerIpPerMinute: v.TOKEN_REQUESTS_PER_IP_PER_MINUTE,
      tokenRequestsPerClientPerMinute: v.TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE,
      /** Sign-up policy and the limits of the onboarding forms. */
      onboarding: {
        signupPolicy: v.SIGNUP_POLICY,
        /** Lower-case domains; empty → any. */
        signupEmailDomains: v.SIGNUP_EMAIL_DOMAINS ?? [],
        signupAttemptsPerIpPerHour: v.SIGNUP_ATTEMPTS_PER_IP_PER_HOUR,
        emailsPerAddressPerHour: v.EMAILS_PER_ADDRESS_PER_HOUR,
        ownerInvitations: v.SIGNUP_OWNER_INVITATIONS,
        ownerInvitationsPerAccountPerDay: v.OWNER_INVITATIONS_PER_ACCOUNT_PER_DAY,
        accountTokensRetentionDays: v.ACCOUNT_TOKENS_RETENTION_DAYS,
      },
      /** Upstream OpenID providers for "Continue with …"; empty → none. */
      upstreamProviders: v.UPSTREAM_OIDC_PROVIDERS ?? [],
    },
    /** Outgoing e-mail (verification, reset, invitations); null url → not configured. */
    mail: {
      smtpUrl: v.SMTP_URL ?? null,
      from: v.MAIL_FROM ?? null,
    },
    gateway: {
      /** null → no upstream gateway: the front door answers 503. */
      url: v.GATEWAY_URL ?? null,
      connectTimeoutMs: v.GATEWAY_CONNECT_TIMEOUT_MS,
      responseTimeoutMs: v.GATEWAY_RESPONSE_TIMEOUT_MS,
      jsonLimitBytes: v.GATEWAY_JSON_LIMIT_BYTES,
      prices: v.GATEWAY_PRICES ?? {},
      /** Requests/s and in-flight caps; 0 = unlimited. */
      limits: {
        keyRate: v.GATEWAY_KEY_RATE,
        /** null: twice the effective rate. */
        keyBurst: v.GATEWAY_KEY_BURST ?? null,
        keyConcurrency: v.GATEWAY_KEY_CONCURRENCY,
        accountRate: v.GATEWAY_ACCOUNT_RATE,
        accountBurst: v.GATEWAY_ACCOUNT_BURST ?? null,
        accountConcurrency: v.GATEWAY_ACCOUNT_CONCURRENCY,
        /** cluster: each replica enforces 1/N (heartbeats in PostgreSQL); replica: the whole. */
        scope: v.GATEWAY_LIMITS_SCOPE,
        heartbeatMs: v.GATEWAY_REPLICA_HEARTBEAT_MS,
        replicaTtlMs: v.GATEWAY_REPLICA_TTL_MS,
      },
      /** null → anonymous mode off. */
      anonymous:
        v.GATEWAY_ANONYMOUS_ACCOUNT === undefined
          ? null
          : {
              accountId: v.GATEWAY_ANONYMOUS_ACCOUNT,
              rate: v.GATEWAY_ANONYMOUS_RATE,
              burst: v.GATEWAY_ANONYMOUS_BURST ?? null,
              concurrency: v.GATEWAY_ANONYMOUS_CONCURRENCY,
            },
      webhookSecret: v.LIVEPEER_WEBHOOK_SECRET ?? null,
      /** TRUST_PROXY: whether an incoming X-Forwarded-For is extended or replaced. */
      trustProxy: v.TRUST_PROXY,
      /** The signer's price ceiling, answered to go-livepeer's signer as the webhook's
       * maxPrice; null when SIGNER_MAX_PRICE_PER_UNIT_WEI is 0 (no ceiling). */
      signerMaxPrice:
        v.SIGNER_MAX_PRICE_PER_UNIT_WEI > 0n
          ? {
              pricePerUnitWei: v.SIGNER_MAX_PRICE_PER_UNIT_WEI,
              pixelsPerUnit: BigInt(v.SIGNER_MAX_PRICE_PIXELS_PER_UNIT),
            }
          : null,
    },
    signer: {
      /** null → no chain: the signer is disabled. */
      rpcUrl: v.ETH_RPC_URL ?? null,
      controller: v.LIVEPEER_CONTROLLER,
      /** null → no keystore: the signer is disabled. */
      keystoreFile: v.SIGNER_KEYSTORE_FILE ?? null,
      password: v.SIGNER_PASSWORD ?? null,
      pollIntervalMs: v.SIGNER_POLL_INTERVAL_MS,
      refreshIntervalMs: v.SIGNER_REFRESH_INTERVAL_MS,
      /** null → no automatic funding. checkSigner makes the others required with the targets. */
      funding:
        v.SIGNER_TARGET_DEPOSIT_WEI === undefined
          ? null
          : {
              targetDepositWei: v.SIGNER_TARGET_DEPOSIT_WEI,
              targetReserveWei: required(v.SIGNER_TARGET_RESERVE_WEI),
              refillThresholdPercent: v.SIGNER_REFILL_THRESHOLD_PERCENT,
              maxPerTxWei: required(v.SIGNER_MAX_PER_TX_WEI),
              maxPerDayWei: required(v.SIGNER_MAX_PER_DAY_WEI),
              fundFor: v.SIGNER_FUND_FOR ?? null,
            },
      gasReserveWei: v.SIGNER_GAS_RESERVE_WEI,
      /** Worker threads for payment signatures; 0 → the request thread. */
      signingThreads: v.SIGNER_SIGNING_THREADS,
      /** The signer-only listener (SIGNER_PORT); null → the signer answers on PORT only. */
      listen: v.SIGNER_PORT === undefined ? null : { host: v.SIGNER_HOST, port: v.SIGNER_PORT },
      /** The remote-signer protocol's limits (LIVEPEER.md §2.2, §3.4). */
      remote: {
        maxTicketEvWei: v.SIGNER_MAX_TICKET_EV_WEI,
        maxTotalEvWei: v.SIGNER_MAX_TOTAL_EV_WEI,
        depositMultiplier: BigInt(v.SIGNER_DEPOSIT_MULTIPLIER),
        /** 0n → no ceiling. */
        maxPricePerUnitWei: v.SIGNER_MAX_PRICE_PER_UNIT_WEI,
        maxPricePixelsPerUnit: BigInt(v.SIGNER_MAX_PRICE_PIXELS_PER_UNIT),
        orchestrators: v.SIGNER_ORCHESTRATORS ?? [],
        /** Credential ids (API key or OIDC client) whose payments belong to the stream owner. */
        sharedCredentials: v.SIGNER_SHARED_CREDENTIALS ?? [],
      },
    },
    billing: {
      rates: {
        fixed: v.BILLING_ETH_USD_RATE ?? null,
        feedAddress: v.BILLING_ETH_USD_FEED ?? null,
        rpcUrl: v.ETH_RPC_URL ?? null,
        maxAgeSeconds: v.BILLING_RATE_MAX_AGE_SECONDS,
      },
      stripe: {
        secretKey: v.STRIPE_SECRET_KEY ?? null,
        webhookSecret: v.STRIPE_WEBHOOK_SECRET ?? null,
        apiBase: v.STRIPE_API_BASE ?? null,
        finalize: v.STRIPE_FINALIZE_INVOICES,
        daysUntilDue: v.STRIPE_DAYS_UNTIL_DUE,
      },
      spendRefreshMs: v.BILLING_SPEND_REFRESH_SECONDS * 1000,
      spendFullReloadMs: SPEND_FULL_RELOAD_MS,
      /** null: no scheduled close. */
      closeAfterMs: v.BILLING_AUTO_CLOSE ? v.BILLING_CLOSE_AFTER_HOURS * 3_600_000 : null,
      jobIntervalMs: BILLING_JOB_INTERVAL_MS,
      prepaidReserveUsdMicros: v.BILLING_PREPAID_RESERVE_USD,
      prepaidIntervalMs: v.BILLING_PREPAID_INTERVAL_SECONDS * 1000,
      prepaid: {
        topUpAmountsUsdMicros: [...v.BILLING_TOPUP_AMOUNTS_USD].sort((a, b) =>
          a < b ? -1 : a > b ? 1 : 0,
        ),
        spendAlertPercents: v.BILLING_SPEND_ALERT_PERCENTS,
        rechargeMaxAttempts: v.BILLING_RECHARGE_MAX_ATTEMPTS,
        publicUrl,
      },
    },
    console: {
      publicUrl,
      /** Whether the console offers account holders an invitation form. */
      ownerInvitations: v.SIGNUP_OWNER_INVITATIONS && v.SIGNUP_POLICY === 'invite',
    },
    notifications: {
      allowHttp: v.WEBHOOK_ALLOW_HTTP,
      allowPrivateAddresses: v.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
      timeoutMs: v.WEBHOOK_TIMEOUT_SECONDS * 1000,
      disableAfterMs: v.WEBHOOK_DISABLE_AFTER_HOURS * 3_600_000,
      disableAfterFailures: v.WEBHOOK_DISABLE_AFTER_FAILURES,
      pollMs: v.WEBHOOK_POLL_SECONDS * 1000,
      /** null → deployment-wide alerts go only to operators' webhook endpoints. */
      operatorEmail: v.ALERT_OPERATOR_EMAIL ?? null,
      publicUrl,
    },
  };
}

/** A value the cross-field checks have made required; reaching undefined here is a bug. */
function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('config: a required setting was not checked');
  return value;
}

/** Pure part of loading: environment → values or the full list of problems. */
export function parseConfig(
  env: Env,
  readFile: (file: string) => string = (f) => readFileSync(f, 'utf8'),
): Config {
  const problems: string[] = [];
  const values = readSettings(env, readFile, problems);
  if (
    values.DATABASE_URL !== undefined &&
    values.TOLLHOUSE_SECRET === undefined &&
    !problems.some(isAbout('TOLLHOUSE_SECRET'))
  ) {
    problems.push(
      'TOLLHOUSE_SECRET: required when DATABASE_URL is set (every replica must share it); generate one with `openssl rand -hex 32`',
    );
  }
  // Mail needs a sender.
  if (
    values.SMTP_URL !== undefined &&
    values.MAIL_FROM === undefined &&
    !problems.some(isAbout('MAIL_FROM'))
  ) {
    problems.push('MAIL_FROM: required with SMTP_URL (the sender of the e-mails)');
  }
  const signerProblems = checkSigner(values, problems);
  problems.push(...signerProblems.filter((p) => !problems.some(isAbout(p.split(':')[0]!))));
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(buildConfig(values));
}

/** Settings of the signer that only make sense together. */
function checkSigner(values: SettingValues, reported: readonly string[]): string[] {
  const problems: string[] = [];
  // A setting already reported as invalid counts as given: one problem per mistake.
  const set = (name: SettingName) => values[name] !== undefined || reported.some(isAbout(name));
  if (set('SIGNER_KEYSTORE_FILE') && !set('SIGNER_PASSWORD')) {
    problems.push(
      'SIGNER_PASSWORD: required with SIGNER_KEYSTORE_FILE (set SIGNER_PASSWORD_FILE to a file holding it)',
    );
  }
  if (set('SIGNER_TARGET_DEPOSIT_WEI') !== set('SIGNER_TARGET_RESERVE_WEI')) {
    problems.push(
      'SIGNER_TARGET_RESERVE_WEI: set both SIGNER_TARGET_DEPOSIT_WEI and SIGNER_TARGET_RESERVE_WEI, or neither',
    );
  }
  if (set('SIGNER_TARGET_DEPOSIT_WEI')) {
    const needed: SettingName[] = [
      'SIGNER_MAX_PER_TX_WEI',
      'SIGNER_MAX_PER_DAY_WEI',
      'ETH_RPC_URL',
      'SIGNER_KEYSTORE_FILE',
    ];
    for (const name of needed) {
      if (!set(name)) problems.push(`${name}: required when the funding targets are set`);
    }
  }
  if (set('SIGNER_FUND_FOR') && !set('SIGNER_TARGET_DEPOSIT_WEI')) {
    problems.push(
      'SIGNER_FUND_FOR: needs the funding targets (SIGNER_TARGET_DEPOSIT_WEI, SIGNER_TARGET_RESERVE_WEI)',
    );
  }
  return problems;
}

function isAbout(name: string) {
  return (problem: string) => problem.startsWith(`${name}:`) || problem.startsWith(`${name}_FILE:`);
}

/**
 * Parses the environment and, in embedded mode without TOLLHOUSE_SECRET, reads or creates the
 * generated secret in the data folder (mode 0600) so restarts can decrypt what was stored.
 */
export function loadConfig(env: Env = process.env): LoadedConfig {
  const config = parseConfig(env);
  const warnings: string[] = [];
  if (config.secret !== '') return { config, warnings };

  const file = path.join(config.database.dataDir, 'secret');
  let secret: string;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.database.dataDir, { recursive: true, mode: 0o700 });
    secret = randomBytes(32).toString('hex');
    // 'wx' fails if another process created it meanwhile; then read theirs.
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    } catch {
      secret = readFileSync(file, 'utf8').trim();
    }
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError([`TOLLHOUSE_SECRET: the generated secret in ${file} is damaged`]);
  }
  warnings.push(
    `TOLLHOUSE_SECRET is not set: using the generated secret in ${file}. Back it up with the data folder; set TOLLHOUSE_SECRET for production.`,
  );
  return { config: deepFreeze({ ...config, secret }), warnings };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
