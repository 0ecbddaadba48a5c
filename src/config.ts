// Every setting tollhouse reads, from the environment, validated once. This is the only file
// that touches process.env: the rest of the service receives frozen slices of `Config`.
//
// Rules (documented in README "Configuration"):
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

interface Setting {
  /** Environment variable name. */
  name: string;
  /** Default as the operator would type it; absent means "unset" is meaningful. */
  default?: string;
  /** May be given as `<name>_FILE`; its value is never echoed in errors or logs. */
  secret?: boolean;
  doc: string;
  schema: z.ZodType<unknown, string>;
}

/**
 * The settings, as documented data: README's table, `.env.example` and the Docker wiring test
 * are checked against this list.
 */
export const SETTINGS: readonly Setting[] = [
  {
    name: 'PORT',
    default: '8080',
    doc: 'TCP port of the one HTTP listener (API, OIDC, front door, signer, health, metrics).',
    schema: integer(1, 65535),
  },
  {
    name: 'HOST',
    default: '0.0.0.0',
    doc: 'Address to listen on. Use 127.0.0.1 to accept local connections only.',
    schema: z.string().min(1),
  },
  {
    name: 'PUBLIC_URL',
    default: 'http://localhost:$PORT',
    doc: 'The URL clients use to reach tollhouse; the OIDC issuer is `${PUBLIC_URL}/oidc`.',
    schema: httpUrl,
  },
  {
    name: 'DATABASE_URL',
    secret: true,
    doc: 'PostgreSQL connection URL. Unset: embedded PGlite stored under TOLLHOUSE_DATA_DIR (one process only).',
    schema: postgresUrl,
  },
  {
    name: 'GATEWAY_URL',
    doc: 'The go-livepeer gateway (broadcaster mode) that the front door forwards AI requests to. Unset: the front door is off.',
    schema: httpUrl,
  },
  {
    name: 'GATEWAY_CONNECT_TIMEOUT_MS',
    default: '5000',
    doc: 'Front door: longest wait for a TCP connection to GATEWAY_URL; then 504.',
    schema: integer(100, 600_000),
  },
  {
    name: 'GATEWAY_RESPONSE_TIMEOUT_MS',
    default: '600000',
    doc: 'Front door: longest wait for the response headers, and between two body chunks, from GATEWAY_URL; then 504 (or the stream is cut). Image-to-video can take minutes.',
    schema: integer(100, 3_600_000),
  },
  {
    name: 'GATEWAY_JSON_LIMIT_BYTES',
    default: '1048576',
    doc: 'Front door: largest JSON request body (text-to-image, llm, text-to-speech, live); it is read to compute units, larger bodies get 413. Multipart uploads are streamed and not limited here.',
    schema: integer(1024, 100 * 1024 * 1024),
  },
  {
    name: 'GATEWAY_PRICES',
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
  {
    name: 'GATEWAY_KEY_RATE',
    default: '20',
    doc: 'Front door: requests per second each API key or token may make (token bucket, burst twice this; per replica). 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  {
    name: 'GATEWAY_KEY_CONCURRENCY',
    default: '8',
    doc: 'Front door: requests each API key or token may have in flight at once (per replica). 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  {
    name: 'GATEWAY_ACCOUNT_RATE',
    default: '50',
    doc: 'Front door: requests per second per account, all its keys together (burst twice this; per replica). 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  {
    name: 'GATEWAY_ACCOUNT_CONCURRENCY',
    default: '32',
    doc: 'Front door: requests per account in flight at once (per replica). 0: unlimited.',
    schema: integer(0, 1_000_000),
  },
  {
    name: 'GATEWAY_ANONYMOUS_ACCOUNT',
    doc: 'Front door anonymous mode (a community gateway): requests without Authorization are accepted and metered to this account (acct_…, must exist). Unset: a credential is required.',
    schema: z.string().regex(/^acct_[0-9A-Za-z]{1,64}$/, 'expected an account id (acct_…)'),
  },
  {
    name: 'GATEWAY_ANONYMOUS_RATE',
    default: '1',
    doc: 'Anonymous mode: requests per second per client IP (burst twice this; per replica).',
    schema: integer(1, 1_000_000),
  },
  {
    name: 'GATEWAY_ANONYMOUS_CONCURRENCY',
    default: '1',
    doc: 'Anonymous mode: requests in flight per client IP (per replica).',
    schema: integer(1, 1_000_000),
  },
  {
    name: 'LIVEPEER_WEBHOOK_SECRET',
    secret: true,
    doc: 'Shared secret go-livepeer sends to /webhooks/livepeer/* (as `Authorization: Bearer <secret>`, `x-api-key`, or `?secret=` in the webhook URL). Unset: the webhooks answer 503.',
    schema: z.string().min(16, 'expected at least 16 characters'),
  },
  {
    name: 'DATABASE_POOL_MAX',
    default: '10',
    doc: 'Maximum PostgreSQL connections per process.',
    schema: integer(1, 1000),
  },
  {
    name: 'TOLLHOUSE_DATA_DIR',
    default: './.tollhouse',
    doc: 'Folder for the embedded database and the generated secret (embedded mode only).',
    schema: z.string().min(1),
  },
  {
    name: 'TOLLHOUSE_SECRET',
    secret: true,
    doc: 'Key that encrypts secrets at rest (at least 32 characters, e.g. `openssl rand -hex 32`). Required with DATABASE_URL; generated into the data folder in embedded mode.',
    schema: z.string().min(MIN_SECRET_LENGTH, `expected at least ${MIN_SECRET_LENGTH} characters`),
  },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    doc: `Log threshold: ${LOG_LEVELS.join(', ')}. Logs are JSON lines on stdout.`,
    schema: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
  },
  {
    name: 'HTTP_BODY_LIMIT_BYTES',
    default: '1048576',
    doc: 'Largest JSON request body the REST API accepts (bytes); larger bodies get 413.',
    schema: integer(1024, 100 * 1024 * 1024),
  },
  {
    name: 'TRUST_PROXY',
    default: 'false',
    doc: 'Trust X-Forwarded-For/-Proto from a reverse proxy in front of tollhouse. Required with an https PUBLIC_URL (`serve` refuses to start without it).',
    schema: boolean,
  },
  {
    name: 'SHUTDOWN_TIMEOUT_SECONDS',
    default: '8',
    doc: 'On SIGTERM/SIGINT, how long in-flight requests may finish before connections are closed.',
    // Kept below 10 s so the whole shutdown, including flushing and closing the database, fits
    // in the 10 s that orchestrators (Kubernetes' default grace is 30 s, Docker's 10 s) allow.
    schema: integer(0, 9),
  },
  {
    name: 'ACCESS_TOKEN_TTL_SECONDS',
    default: '900',
    doc: 'Lifetime of OIDC access tokens (JWTs, not revocable, so keep it short). Refresh tokens last 14 days.',
    schema: integer(60, 86_400),
  },
  {
    name: 'LOGIN_ATTEMPTS_PER_MINUTE',
    default: '10',
    doc: 'Sign-in attempts allowed per email address per minute (per process).',
    schema: integer(1, 100_000),
  },
  {
    name: 'LOGIN_ATTEMPTS_PER_IP_PER_MINUTE',
    default: '30',
    doc: 'Sign-in attempts allowed per client IP per minute (per process).',
    schema: integer(1, 100_000),
  },
  {
    name: 'TOKEN_REQUESTS_PER_IP_PER_MINUTE',
    default: '6000',
    doc: 'Requests to the OIDC token and device endpoints allowed per client IP per minute (per process); 0 disables the limit.',
    schema: integer(0, 10_000_000),
  },
  {
    name: 'TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE',
    default: '6000',
    doc: 'Requests to the OIDC token and device endpoints allowed per authenticated client (client_id) per minute (per process); 0 disables the limit.',
    schema: integer(0, 10_000_000),
  },
  // issue 18: sign-up policy and e-mail (src/identity/onboarding.ts)
  {
    name: 'SIGNUP_POLICY',
    default: 'closed',
    doc: 'Who may create an account: `closed` (operators only), `invite` (an invitation link), or `open` (anyone, see SIGNUP_EMAIL_DOMAINS). See docs/onboarding.md.',
    schema: z.enum(['closed', 'invite', 'open'], { error: 'expected closed, invite or open' }),
  },
  {
    name: 'SIGNUP_EMAIL_DOMAINS',
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
  {
    name: 'SMTP_URL',
    secret: true,
    doc: 'Mail server for verification, password reset and invitation e-mails: `smtps://user:password@host:465` or `smtp://host:587` (STARTTLS when offered). Unset: no e-mail; operators get links from the command line.',
    schema: z.string().refine((v) => URL.canParse(v) && /^smtps?:$/.test(new URL(v).protocol), {
      error: 'expected an smtp:// or smtps:// URL',
    }),
  },
  {
    name: 'MAIL_FROM',
    doc: 'Sender of the e-mails, e.g. `Example API <no-reply@example.com>`. Required with SMTP_URL.',
    schema: z.string().min(3).max(320),
  },
  {
    name: 'SIGNUP_ATTEMPTS_PER_IP_PER_HOUR',
    default: '20',
    doc: 'Sign-up, forgot-password and invitation-accept forms sent per client IP per hour (per process).',
    schema: integer(1, 1_000_000),
  },
  {
    name: 'EMAILS_PER_ADDRESS_PER_HOUR',
    default: '5',
    doc: 'Sign-up and password-reset e-mails sent to one address per hour (per process): a form cannot be used to flood a mailbox.',
    schema: integer(1, 1000),
  },
  // end of issue 18
  {
    name: 'METRICS_TOKEN',
    secret: true,
    doc: 'If set, GET /metrics requires `Authorization: Bearer <token>`.',
    schema: z.string().min(1),
  },
  {
    name: 'API_KEYS_CACHE_MAX',
    default: '100000',
    doc: 'Most API keys each process keeps verified in memory (about 1 KB each); colder keys cost one query.',
    schema: integer(100, 10_000_000),
  },
  {
    name: 'API_KEYS_FLUSH_SECONDS',
    default: '30',
    doc: "How often each process writes API keys' last-use times (batched, not per request).",
    schema: integer(1, 3600),
  },
  {
    name: 'ETH_RPC_URL',
    // Hosted RPC URLs embed the provider's API key.
    secret: true,
    doc: 'Ethereum JSON-RPC endpoint of the chain the Livepeer contracts live on (Arbitrum One), also used for the Chainlink ETH/USD feed. Unset: the payment signer is disabled.',
    schema: httpUrl,
  },
  {
    name: 'LIVEPEER_CONTROLLER',
    default: ARBITRUM_CONTROLLER,
    doc: "Livepeer Controller contract; TicketBroker, RoundsManager and BondingManager are resolved through it. Default: Arbitrum One's.",
    schema: ethAddress,
  },
  {
    name: 'SIGNER_KEYSTORE_FILE',
    doc: 'Web3 Secret Storage (v3) keystore of the signer account, as geth and go-livepeer write it (`tollhouse keystore create`). Unset: the payment signer is disabled.',
    schema: z.string().min(1),
  },
  {
    name: 'SIGNER_PASSWORD',
    secret: true,
    doc: 'Password of SIGNER_KEYSTORE_FILE (prefer SIGNER_PASSWORD_FILE). The keystore is decrypted once at start.',
    schema: z.string().min(1),
  },
  {
    name: 'SIGNER_POLL_INTERVAL_MS',
    default: '5000',
    doc: 'How often the signer reads the chain (new blocks, TicketBroker events for its account) and runs the funding policy.',
    schema: integer(50, 600_000),
  },
  {
    name: 'SIGNER_REFRESH_INTERVAL_MS',
    default: '30000',
    doc: 'Longest time between full re-reads of the chain view (sender info, rounds, ETH balance) when no event calls for one.',
    schema: integer(50, 3_600_000),
  },
  {
    name: 'SIGNER_TARGET_DEPOSIT_WEI',
    doc: 'TicketBroker deposit the funding loop keeps (wei). Unset (with SIGNER_TARGET_RESERVE_WEI): no automatic funding.',
    schema: wei,
  },
  {
    name: 'SIGNER_TARGET_RESERVE_WEI',
    doc: 'TicketBroker reserve the funding loop keeps (wei).',
    schema: wei,
  },
  {
    name: 'SIGNER_REFILL_THRESHOLD_PERCENT',
    default: '50',
    doc: 'Top up (both back to target, in one transaction) when the deposit or the reserve falls below this percentage of its target; also the floor for the readiness warning.',
    schema: integer(1, 100),
  },
  {
    name: 'SIGNER_GAS_RESERVE_WEI',
    default: '10000000000000000',
    doc: 'ETH (wei) the funding loop never spends, kept for gas; below it the status warns. Default 0.01 ETH.',
    schema: wei,
  },
  {
    name: 'SIGNER_MAX_PER_TX_WEI',
    doc: 'Most wei one automatic funding transaction sends (deposit + reserve). Required with the targets.',
    schema: wei,
  },
  {
    name: 'SIGNER_MAX_PER_DAY_WEI',
    doc: 'Most wei automatic funding sends in any 24 hours, counted from the funding journal (so it holds across restarts and replicas). Required with the targets.',
    schema: wei,
  },
  {
    name: 'SIGNER_FUND_FOR',
    doc: "Fund this address (a self-keyed go-livepeer gateway) with fundDepositAndReserveFor instead of the signer's own deposit.",
    schema: ethAddress,
  },
  {
    name: 'BILLING_ETH_USD_RATE',
    doc: 'Fixed ETH/USD rate (dollars per ether, e.g. `3150.25`) used to price wei in USD. Wins over BILLING_ETH_USD_FEED. Unset with no feed: statements cannot be closed (no built-in price).',
    schema: z
      .string()
      .regex(/^\d{1,12}(\.\d{1,18})?$/, 'expected a decimal number such as 3150.25'),
  },
  {
    name: 'BILLING_ETH_USD_FEED',
    doc: 'Chainlink ETH/USD price feed (aggregator address) read through ETH_RPC_URL with `latestRoundData()`.',
    schema: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x-prefixed 20-byte address'),
  },
  {
    name: 'BILLING_RATE_MAX_AGE_SECONDS',
    default: '3600',
    doc: "A Chainlink answer updated longer ago than this is refused as stale (ETH/USD's heartbeat on Ethereum mainnet is 1 hour).",
    schema: integer(60, 7 * 24 * 3600),
  },
  {
    name: 'BILLING_SPEND_REFRESH_SECONDS',
    default: '5',
    doc: 'How often each process re-reads month-to-date spend for the spend gate; caps can be overshot by what a principal spends in this time.',
    schema: integer(1, 3600),
  },
  {
    name: 'BILLING_AUTO_CLOSE',
    default: 'true',
    doc: 'Close each month automatically BILLING_CLOSE_AFTER_HOURS after it ends (one replica does it). Off: only `tollhouse billing close`.',
    schema: boolean,
  },
  {
    name: 'BILLING_CLOSE_AFTER_HOURS',
    default: '6',
    doc: 'Hours after a month ends before the scheduled close, so usage still in transit lands in its own month.',
    schema: integer(0, 24 * 27),
  },
  {
    name: 'STRIPE_SECRET_KEY',
    secret: true,
    doc: 'Stripe secret API key. Set: closed statements are pushed to Stripe as invoices (`tollhouse billing stripe-sync`, and every few minutes).',
    schema: z.string().min(1),
  },
  {
    name: 'STRIPE_WEBHOOK_SECRET',
    secret: true,
    doc: 'Signing secret (`whsec_…`) of the Stripe webhook endpoint `POST /webhooks/stripe`.',
    schema: z.string().min(1),
  },
  {
    name: 'STRIPE_API_BASE',
    doc: 'Another base URL for the Stripe API (a proxy, or a local fake in tests). Unset: https://api.stripe.com.',
    schema: httpUrl,
  },
  {
    name: 'STRIPE_FINALIZE_INVOICES',
    default: 'false',
    doc: 'Finalize each Stripe invoice after its items are added (else left as a draft for review).',
    schema: boolean,
  },
  {
    name: 'STRIPE_DAYS_UNTIL_DUE',
    default: '30',
    doc: 'Days a customer has to pay a Stripe invoice.',
    schema: integer(1, 365),
  },
  // Remote-signer protocol (go-livepeer's sender limits; its flag defaults).
  {
    name: 'SIGNER_MAX_TICKET_EV_WEI',
    default: '3000000000000',
    doc: 'Largest expected value of one ticket the signer signs (go-livepeer -maxTicketEV, default 3e12 wei).',
    schema: wei,
  },
  {
    name: 'SIGNER_MAX_TOTAL_EV_WEI',
    default: '20000000000000',
    doc: 'Largest expected value of one batch of tickets (go-livepeer -maxTotalEV, default 2e13 wei).',
    schema: wei,
  },
  {
    name: 'SIGNER_DEPOSIT_MULTIPLIER',
    default: '1',
    doc: 'A ticket face value may be at most deposit / this (go-livepeer -depositMultiplier, default 1).',
    schema: integer(1, 1_000_000),
  },
  {
    name: 'SIGNER_MAX_PRICE_PER_UNIT_WEI',
    default: '0',
    doc: 'Highest orchestrator price (wei per SIGNER_MAX_PRICE_PIXELS_PER_UNIT units) the signer pays; 0 = no ceiling (go-livepeer -maxPricePerUnit, default 0).',
    schema: wei,
  },
  {
    name: 'SIGNER_MAX_PRICE_PIXELS_PER_UNIT',
    default: '1',
    doc: 'Units the SIGNER_MAX_PRICE_PER_UNIT_WEI price is for (go-livepeer -pixelsPerUnit, default 1).',
    schema: integer(1, Number.MAX_SAFE_INTEGER),
  },
  {
    name: 'SIGNER_ORCHESTRATORS',
    doc: 'Comma-separated orchestrator URLs that GET /discover-orchestrators returns (go-livepeer -orchAddr). Unset: it answers 503.',
    schema: commaList.pipe(z.array(httpUrl).min(1, 'expected at least one http(s) URL')),
  },
  {
    name: 'SIGNER_SIGNING_THREADS',
    default: '0',
    doc: 'Threads that sign remote-signer payments (libsecp256k1); 0 signs on the request thread. See BENCHMARKS.md (signer) for the choice.',
    schema: integer(0, 16),
  },
  {
    name: 'SIGNER_PORT',
    doc: 'TCP port of a second listener that serves only the go-livepeer remote-signer routes (/sign-orchestrator-info, /generate-live-payment, /discover-orchestrators) and health, so the signer can stay on a private network while the API is public. Unset: the signer answers on PORT only.',
    schema: integer(1, 65535),
  },
  {
    name: 'SIGNER_HOST',
    default: '0.0.0.0',
    doc: 'Address the SIGNER_PORT listener binds (e.g. a private interface).',
    schema: z.string().min(1),
  },
  {
    name: 'SIGNER_SHARED_CREDENTIALS',
    doc: 'API key ids (key_…) or OIDC client ids of shared gateway credentials: their payments are metered to, and spend-checked against, the owner of the stream the Tollhouse-Stream header names. Unset: none.',
    schema: commaList.pipe(
      z
        .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'expected key_… or client ids'))
        .min(1, 'expected at least one credential id'),
    ),
  },
];

export interface Config {
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly publicUrl: string;
    readonly bodyLimitBytes: number;
    readonly trustProxy: boolean;
    readonly shutdownTimeoutMs: number;
  };
  readonly database: {
    /** null → embedded PGlite under `dataDir`. */
    readonly url: string | null;
    readonly poolMax: number;
    readonly dataDir: string;
  };
  /** Root key for encryption at rest and keyed hashes. */
  readonly secret: string;
  readonly log: { readonly level: LogLevel };
  readonly gateway: {
    /** null → no upstream gateway: the front door answers 503. */
    readonly url: string | null;
    readonly connectTimeoutMs: number;
    readonly responseTimeoutMs: number;
    readonly jsonLimitBytes: number;
    readonly prices: GatewayPrices;
    /** Requests/s and in-flight caps; 0 = unlimited. */
    readonly limits: {
      readonly keyRate: number;
      readonly keyConcurrency: number;
      readonly accountRate: number;
      readonly accountConcurrency: number;
    };
    /** null → anonymous mode off. */
    readonly anonymous: {
      readonly accountId: string;
      readonly rate: number;
      readonly concurrency: number;
    } | null;
    readonly webhookSecret: string | null;
  };
  readonly metrics: { readonly token: string | null };
  readonly keys: { readonly cacheMax: number; readonly lastUsedFlushMs: number };
  // issue 18: sign-up policy and e-mail
  readonly onboarding: {
    readonly signupPolicy: 'closed' | 'invite' | 'open';
    /** Lower-case domains; empty → any. */
    readonly signupEmailDomains: readonly string[];
    /** null → e-mail is not configured. */
    readonly smtpUrl: string | null;
    readonly mailFrom: string | null;
    readonly signupAttemptsPerIpPerHour: number;
    readonly emailsPerAddressPerHour: number;
  };
  readonly identity: {
    readonly accessTokenTtlSeconds: number;
    readonly loginAttemptsPerMinute: number;
    readonly loginAttemptsPerIpPerMinute: number;
    readonly tokenRequestsPerIpPerMinute: number;
    readonly tokenRequestsPerClientPerMinute: number;
  };
  readonly signer: {
    /** null → no chain: the signer is disabled. */
    readonly rpcUrl: string | null;
    readonly controller: string;
    /** null → no keystore: the signer is disabled. */
    readonly keystoreFile: string | null;
    readonly password: string | null;
    readonly pollIntervalMs: number;
    readonly refreshIntervalMs: number;
    /** null → no automatic funding. */
    readonly funding: {
      readonly targetDepositWei: bigint;
      readonly targetReserveWei: bigint;
      readonly refillThresholdPercent: number;
      readonly maxPerTxWei: bigint;
      readonly maxPerDayWei: bigint;
      readonly fundFor: string | null;
    } | null;
    readonly gasReserveWei: bigint;
    /** Worker threads for payment signatures; 0 → the request thread. */
    readonly signingThreads: number;
    /** The signer-only listener (SIGNER_PORT); null → the signer answers on PORT only. */
    readonly listen: { readonly host: string; readonly port: number } | null;
    /** The remote-signer protocol's limits (LIVEPEER.md §2.2, §3.4). */
    readonly remote: {
      readonly maxTicketEvWei: bigint;
      readonly maxTotalEvWei: bigint;
      readonly depositMultiplier: bigint;
      /** 0n → no ceiling. */
      readonly maxPricePerUnitWei: bigint;
      readonly maxPricePixelsPerUnit: bigint;
      readonly orchestrators: readonly string[];
      /** Credential ids (API key or OIDC client) whose payments belong to the stream owner. */
      readonly sharedCredentials: readonly string[];
    };
  };
  readonly billing: {
    readonly ethUsdRate: string | null;
    readonly ethUsdFeed: string | null;
    readonly ethRpcUrl: string | null;
    readonly rateMaxAgeSeconds: number;
    readonly spendRefreshMs: number;
    /** null: no scheduled close. */
    readonly closeAfterMs: number | null;
    readonly stripe: {
      readonly secretKey: string | null;
      readonly webhookSecret: string | null;
      readonly apiBase: string | null;
      readonly finalize: boolean;
      readonly daysUntilDue: number;
    };
  };
}

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
  setting: Setting,
  problems: string[],
  readFile: (file: string) => string,
): string | undefined {
  const direct = env[setting.name] === '' ? undefined : env[setting.name];
  if (!setting.secret) return direct;
  const fileName = env[`${setting.name}_FILE`] === '' ? undefined : env[`${setting.name}_FILE`];
  if (fileName === undefined) return direct;
  if (direct !== undefined) {
    problems.push(`${setting.name}: set ${setting.name} or ${setting.name}_FILE, not both`);
    return undefined;
  }
  try {
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    const value = readFile(fileName).replace(/\r?\n$/, '');
    if (value === '') {
      problems.push(`${setting.name}_FILE: ${fileName} is empty`);
      return undefined;
    }
    return value;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    problems.push(`${setting.name}_FILE: cannot read ${fileName} (${code})`);
    return undefined;
  }
}

/** Pure part of loading: environment → values or the full list of problems. */
export function parseConfig(
  env: Env,
  readFile: (file: string) => string = (f) => readFileSync(f, 'utf8'),
): Config {
  const problems: string[] = [];
  const values = new Map<string, unknown>();
  for (const setting of SETTINGS) {
    const raw = readRaw(env, setting, problems, readFile);
    if (raw === undefined) continue;
    const parsed = setting.schema.safeParse(raw);
    if (parsed.success) {
      values.set(setting.name, parsed.data);
    } else {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      const shown = setting.secret ? '' : ` (got ${JSON.stringify(raw)})`;
      problems.push(`${setting.name}: ${reason}${shown}`);
    }
  }
  const get = <T>(name: string): T => {
    if (values.has(name)) return values.get(name) as T;
    const setting = SETTINGS.find((s) => s.name === name);
    if (setting?.default === undefined || setting.default.includes('$')) {
      return undefined as T;
    }
    return setting.schema.parse(setting.default) as T;
  };

  const databaseUrl = get<string | undefined>('DATABASE_URL') ?? null;
  const secret = get<string | undefined>('TOLLHOUSE_SECRET');
  if (databaseUrl !== null && secret === undefined && !problems.some(isAbout('TOLLHOUSE_SECRET'))) {
    problems.push(
      'TOLLHOUSE_SECRET: required when DATABASE_URL is set (every replica must share it); generate one with `openssl rand -hex 32`',
    );
  }
  // issue 18: mail needs a sender.
  if (
    get<unknown>('SMTP_URL') !== undefined &&
    get<unknown>('MAIL_FROM') === undefined &&
    !problems.some(isAbout('MAIL_FROM'))
  ) {
    problems.push('MAIL_FROM: required with SMTP_URL (the sender of the e-mails)');
  }
  const signerProblems = checkSigner(get, problems);
  problems.push(...signerProblems.filter((p) => !problems.some(isAbout(p.split(':')[0]!))));
  if (problems.length > 0) throw new ConfigError(problems);

  const port = get<number>('PORT');
  return deepFreeze({
    http: {
      host: get<string>('HOST'),
      port,
      publicUrl: get<string | undefined>('PUBLIC_URL') ?? `http://localhost:${port}`,
      bodyLimitBytes: get<number>('HTTP_BODY_LIMIT_BYTES'),
      trustProxy: get<boolean>('TRUST_PROXY'),
      shutdownTimeoutMs: get<number>('SHUTDOWN_TIMEOUT_SECONDS') * 1000,
    },
    database: {
      url: databaseUrl,
      poolMax: get<number>('DATABASE_POOL_MAX'),
      dataDir: path.resolve(get<string>('TOLLHOUSE_DATA_DIR')),
    },
    // Filled in by loadConfig in embedded mode; parseConfig callers that need no secret
    // (migrate against PGlite) still get a value that fails loudly if used for encryption.
    secret: secret ?? '',
    log: { level: get<LogLevel>('LOG_LEVEL') },
    gateway: {
      url: get<string | undefined>('GATEWAY_URL') ?? null,
      connectTimeoutMs: get<number>('GATEWAY_CONNECT_TIMEOUT_MS'),
      responseTimeoutMs: get<number>('GATEWAY_RESPONSE_TIMEOUT_MS'),
      jsonLimitBytes: get<number>('GATEWAY_JSON_LIMIT_BYTES'),
      prices: get<GatewayPrices | undefined>('GATEWAY_PRICES') ?? {},
      limits: {
        keyRate: get<number>('GATEWAY_KEY_RATE'),
        keyConcurrency: get<number>('GATEWAY_KEY_CONCURRENCY'),
        accountRate: get<number>('GATEWAY_ACCOUNT_RATE'),
        accountConcurrency: get<number>('GATEWAY_ACCOUNT_CONCURRENCY'),
      },
      anonymous: ((accountId) =>
        accountId === undefined
          ? null
          : {
              accountId,
              rate: get<number>('GATEWAY_ANONYMOUS_RATE'),
              concurrency: get<number>('GATEWAY_ANONYMOUS_CONCURRENCY'),
            })(get<string | undefined>('GATEWAY_ANONYMOUS_ACCOUNT')),
      webhookSecret: get<string | undefined>('LIVEPEER_WEBHOOK_SECRET') ?? null,
    },
    metrics: { token: get<string | undefined>('METRICS_TOKEN') ?? null },
    keys: {
      cacheMax: get<number>('API_KEYS_CACHE_MAX'),
      lastUsedFlushMs: get<number>('API_KEYS_FLUSH_SECONDS') * 1000,
    },
    // issue 18
    onboarding: {
      signupPolicy: get<'closed' | 'invite' | 'open'>('SIGNUP_POLICY'),
      signupEmailDomains: get<string[] | undefined>('SIGNUP_EMAIL_DOMAINS') ?? [],
      smtpUrl: get<string | undefined>('SMTP_URL') ?? null,
      mailFrom: get<string | undefined>('MAIL_FROM') ?? null,
      signupAttemptsPerIpPerHour: get<number>('SIGNUP_ATTEMPTS_PER_IP_PER_HOUR'),
      emailsPerAddressPerHour: get<number>('EMAILS_PER_ADDRESS_PER_HOUR'),
    },
    identity: {
      accessTokenTtlSeconds: get<number>('ACCESS_TOKEN_TTL_SECONDS'),
      loginAttemptsPerMinute: get<number>('LOGIN_ATTEMPTS_PER_MINUTE'),
      loginAttemptsPerIpPerMinute: get<number>('LOGIN_ATTEMPTS_PER_IP_PER_MINUTE'),
      tokenRequestsPerIpPerMinute: get<number>('TOKEN_REQUESTS_PER_IP_PER_MINUTE'),
      tokenRequestsPerClientPerMinute: get<number>('TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE'),
    },
    signer: {
      rpcUrl: get<string | undefined>('ETH_RPC_URL') ?? null,
      controller: get<string>('LIVEPEER_CONTROLLER'),
      keystoreFile: get<string | undefined>('SIGNER_KEYSTORE_FILE') ?? null,
      password: get<string | undefined>('SIGNER_PASSWORD') ?? null,
      pollIntervalMs: get<number>('SIGNER_POLL_INTERVAL_MS'),
      refreshIntervalMs: get<number>('SIGNER_REFRESH_INTERVAL_MS'),
      funding:
        get<bigint | undefined>('SIGNER_TARGET_DEPOSIT_WEI') === undefined
          ? null
          : {
              targetDepositWei: get<bigint>('SIGNER_TARGET_DEPOSIT_WEI'),
              targetReserveWei: get<bigint>('SIGNER_TARGET_RESERVE_WEI'),
              refillThresholdPercent: get<number>('SIGNER_REFILL_THRESHOLD_PERCENT'),
              maxPerTxWei: get<bigint>('SIGNER_MAX_PER_TX_WEI'),
              maxPerDayWei: get<bigint>('SIGNER_MAX_PER_DAY_WEI'),
              fundFor: get<string | undefined>('SIGNER_FUND_FOR') ?? null,
            },
      gasReserveWei: get<bigint>('SIGNER_GAS_RESERVE_WEI'),
      signingThreads: get<number>('SIGNER_SIGNING_THREADS'),
      listen:
        get<number | undefined>('SIGNER_PORT') === undefined
          ? null
          : { host: get<string>('SIGNER_HOST'), port: get<number>('SIGNER_PORT') },
      remote: {
        maxTicketEvWei: get<bigint>('SIGNER_MAX_TICKET_EV_WEI'),
        maxTotalEvWei: get<bigint>('SIGNER_MAX_TOTAL_EV_WEI'),
        depositMultiplier: BigInt(get<number>('SIGNER_DEPOSIT_MULTIPLIER')),
        maxPricePerUnitWei: get<bigint>('SIGNER_MAX_PRICE_PER_UNIT_WEI'),
        maxPricePixelsPerUnit: BigInt(get<number>('SIGNER_MAX_PRICE_PIXELS_PER_UNIT')),
        orchestrators: get<string[] | undefined>('SIGNER_ORCHESTRATORS') ?? [],
        sharedCredentials: get<string[] | undefined>('SIGNER_SHARED_CREDENTIALS') ?? [],
      },
    },
    billing: {
      ethUsdRate: get<string | undefined>('BILLING_ETH_USD_RATE') ?? null,
      ethUsdFeed: get<string | undefined>('BILLING_ETH_USD_FEED') ?? null,
      ethRpcUrl: get<string | undefined>('ETH_RPC_URL') ?? null,
      rateMaxAgeSeconds: get<number>('BILLING_RATE_MAX_AGE_SECONDS'),
      spendRefreshMs: get<number>('BILLING_SPEND_REFRESH_SECONDS') * 1000,
      closeAfterMs: get<boolean>('BILLING_AUTO_CLOSE')
        ? get<number>('BILLING_CLOSE_AFTER_HOURS') * 3_600_000
        : null,
      stripe: {
        secretKey: get<string | undefined>('STRIPE_SECRET_KEY') ?? null,
        webhookSecret: get<string | undefined>('STRIPE_WEBHOOK_SECRET') ?? null,
        apiBase: get<string | undefined>('STRIPE_API_BASE') ?? null,
        finalize: get<boolean>('STRIPE_FINALIZE_INVOICES'),
        daysUntilDue: get<number>('STRIPE_DAYS_UNTIL_DUE'),
      },
    },
  });
}

/** Settings of the signer that only make sense together. */
function checkSigner(get: <T>(name: string) => T, reported: readonly string[]): string[] {
  const problems: string[] = [];
  // A setting already reported as invalid counts as given: one problem per mistake.
  const set = (name: string) => get<unknown>(name) !== undefined || reported.some(isAbout(name));
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
    for (const name of [
      'SIGNER_MAX_PER_TX_WEI',
      'SIGNER_MAX_PER_DAY_WEI',
      'ETH_RPC_URL',
      'SIGNER_KEYSTORE_FILE',
    ]) {
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
