// Benchmark: client-credentials JWT access tokens per second, and full authorization code +
// PKCE flows (authorize → login page → password → consent → code → token) per second, through
// tollhouse on PostgreSQL, each beside a bare oidc-provider with its in-memory adapter (same
// algorithms, same resource-indicator JWTs, same scrypt password check at login) measured in
// the same run. Servers run in child processes; this process only generates load.
//
//   node bench/identity-tokens.ts [--database postgres://postgres@127.0.0.1:5432/test]
//                                 [--seconds 10] [--rounds 4] [--concurrency 32]
//                                 [--flow-concurrency 8] [--before DIR]
//
// The two servers run side by side and take turns (`--rounds`, ABBA order), so other work on
// the machine weighs on both alike. Besides requests/s, each server's own CPU time per request
// (from /proc, Linux) is reported: it depends far less on how busy the machine is. `--before DIR`
// adds tollhouse from another checkout (DIR) as a third server, for before/after figures.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import Provider from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { hashPassword, verifyPassword } from '../src/identity/index.ts';
import { createLogger } from '../src/platform/log.ts';
import { startServer } from '../src/platform/server.ts';
import { startReport } from './report.ts';

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '4' },
    before: { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    'flow-concurrency': { type: 'string', default: '8' },
  },
});

const EMAIL = 'bench@example.com';
const PASSWORD = 'bench password 123';
const REDIRECT = 'http://127.0.0.1:9/cb';

interface ServerInfo {
  url: string;
  issuer: string;
  machine: { id: string; secret: string };
  web: { id: string; secret: string };
}

// ---- servers (child processes) -------------------------------------------------------------

async function serveTollhouse(databaseUrl: string): Promise<ServerInfo> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = parseConfig({
    DATABASE_URL: databaseUrl,
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    PUBLIC_URL: url,
    LOG_LEVEL: 'silent',
    TOKEN_REQUESTS_PER_IP_PER_MINUTE: '0',
    TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE: '0',
    LOGIN_ATTEMPTS_PER_MINUTE: '100000',
    LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: '100000',
  });
  const app = await createApp({ config, log: createLogger({ level: 'silent' }) });
  const owner = await app.identity.accounts.create({
    email: EMAIL,
    password: PASSWORD,
    isAdmin: false,
  });
  const actor = { id: 'bench' };
  const machine = await app.identity.apps.create(
    { name: 'bench machine', kind: 'machine', ownerAccountId: owner.id, scopes: ['gateway'] },
    actor,
  );
  const web = await app.identity.apps.create(
    {
      name: 'bench web',
      kind: 'web',
      ownerAccountId: owner.id,
      scopes: ['gateway'],
      redirectUris: [REDIRECT],
    },
    actor,
  );
  await startServer(app.handler, {
    host: '127.0.0.1',
    port,
    shutdownTimeoutMs: 1000,
    log: app.log,
  });
  return {
    url,
    issuer: `${url}/oidc`,
    machine: { id: machine.app.clientId, secret: machine.clientSecret! },
    web: { id: web.app.clientId, secret: web.clientSecret! },
  };
}

/** oidc-provider as its README sets it up (in-memory adapter, static clients), configured for
 * the same tokens as tollhouse, with a minimal login (same scrypt check) and consent. */
async function serveMemory(): Promise<ServerInfo> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const passwordHash = await hashPassword(PASSWORD);
  const machine = { id: 'machine', secret: randomBytes(32).toString('hex') };
  const web = { id: 'web', secret: randomBytes(32).toString('hex') };
  const provider = new Provider(`${url}/oidc`, {
    clients: [
      {
        client_id: machine.id,
        client_secret: machine.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: web.id,
        client_secret: web.secret,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [REDIRECT],
        scope: 'openid offline_access email profile',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ['bench-cookie-key'] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    pkce: { required: () => true },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, email: EMAIL }),
    }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => url,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'gateway',
          audience: url,
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  const handle = provider.callback();
  const server = http.createServer((req, res) => void answer(req, res));
  async function answer(req: http.IncomingMessage, res: http.ServerResponse) {
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path.startsWith('/oidc')) {
        (req as { originalUrl?: string }).originalUrl = req.url;
        req.url = req.url!.slice(5) || '/';
        await handle(req, res);
        return;
      }
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        const action = details.prompt.name === 'login' ? 'login' : 'confirm';
        res.setHeader('content-type', 'text/html');
        res.end(
          `<form method="post" action="/interaction/${details.uid}/${action}"><input type="hidden" name="csrf" value="x"></form>`,
        );
        return;
      }
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      let result;
      if (path.endsWith('/login')) {
        const ok =
          form.get('email') === EMAIL &&
          (await verifyPassword(form.get('password') ?? '', passwordHash));
        if (!ok) throw new Error('bad login');
        result = { login: { accountId: 'acct_bench' } };
      } else {
        const grant = new provider.Grant({
          accountId: details.session!.accountId,
          clientId: String(details.params.client_id),
        });
        const d = details.prompt.details as {
          missingOIDCScope?: string[];
          missingResourceScopes?: Record<string, string[]>;
        };
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {}))
          grant.addResourceScope(indicator, scopes.join(' '));
        result = { consent: { grantId: await grant.save() } };
      }
      const returnTo = await provider.interactionResult(req, res, result, {
        mergeWithLastSubmission: true,
      });
      res.writeHead(303, { location: returnTo });
      res.end();
    } catch (error) {
      res.writeHead(500);
      res.end(String(error));
    }
  }
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url, issuer: `${url}/oidc`, machine, web };
}

// ---- load (this process) -------------------------------------------------------------------

function basic(id: string, secret: string) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function clientCredentials(info: ServerInfo): Promise<void> {
  const response = await fetch(`${info.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basic(info.machine.id, info.machine.secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=gateway',
  });
  const body = (await response.json()) as { access_token?: string };
  if (response.status !== 200 || !body.access_token)
    throw new Error(`token: ${response.status} ${JSON.stringify(body)}`);
}

async function authCodeFlow(info: ServerInfo): Promise<void> {
  const cookies = new Map<string, string>();
  const request = async (url: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (cookies.size) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';')[0]!;
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return response;
  };
  const follow = async (start: string, init?: RequestInit) => {
    let url = start;
    let response = await request(url, init);
    while (response.status >= 300 && response.status < 400) {
      const next = new URL(response.headers.get('location')!, url).href;
      if (next.startsWith(REDIRECT)) return { url: next, response };
      await response.body?.cancel();
      url = next;
      response = await request(url);
    }
    return { url, response };
  };
  const submit = async (
    page: { url: string; response: Response },
    fields: Record<string, string>,
  ) => {
    const html = await page.response.text();
    const action = /<form[^>]*action="([^"]*(?:login|confirm))"/.exec(html)?.[1];
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
    if (!action)
      throw new Error(`no form on ${page.url}: ${page.response.status} ${html.slice(0, 200)}`);
    return follow(new URL(action, page.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, ...fields }),
    });
  };
  const verifier = randomBytes(32).toString('base64url');
  const { createHash } = await import('node:crypto');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(`${info.issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: info.web.id,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid gateway',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
  }).toString();
  let page = await follow(auth.href);
  page = await submit(page, { email: EMAIL, password: PASSWORD });
  if (!page.url.startsWith(REDIRECT)) page = await submit(page, {});
  const code = new URL(page.url).searchParams.get('code');
  if (!code) throw new Error(`no code: ${page.url}`);
  const token = await fetch(`${info.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basic(info.web.id, info.web.secret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    }),
  });
  const body = (await token.json()) as { access_token?: string };
  if (token.status !== 200 || !body.access_token)
    throw new Error(`code exchange: ${token.status} ${JSON.stringify(body)}`);
}

/** Runs `run` with `concurrency` workers for `seconds`; returns how many completed. */
async function load(run: () => Promise<void>, seconds: number, concurrency: number) {
  let done = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        await run();
        done++;
      }
    }),
  );
  return done;
}

/** CPU time (user + system) a child process has used, in ms; null off Linux. */
function cpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
// USER_HZ: 100 on every Linux architecture Node supports.
const CLOCK_TICKS = 100;

interface Tally {
  done: number;
  ms: number;
  cpuMs: number | null;
}

// ---- orchestration -------------------------------------------------------------------------

function startChild(
  role: string,
  database: string,
  script = new URL(import.meta.url).pathname,
): Promise<{ info: ServerInfo; pid: number; stop(): void }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--role', role, '--database', database], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line)
        resolve({
          info: JSON.parse(line) as ServerInfo,
          pid: child.pid!,
          stop: () => child.kill('SIGKILL'),
        });
    });
    child.on('exit', (code) => reject(new Error(`${role} server exited (${code})`)));
  });
}

async function main() {
  if (values.role === 'tollhouse') {
    process.stdout.write(`${JSON.stringify(await serveTollhouse(values.database))}\n`);
    return;
  }
  if (values.role === 'memory') {
    process.stdout.write(`${JSON.stringify(await serveMemory())}\n`);
    return;
  }
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency);
  const flowConcurrency = Number(values['flow-concurrency']);
  const loadBefore = os.loadavg();
  const report = startReport('identity');

  // Fresh databases for this run, dropped at the end.
  const name = `tollhouse_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: values.database });
  await admin.connect();
  const dbUrl = new URL(values.database);

  // The servers measured side by side: tollhouse, the in-memory baseline and, with --before,
  // tollhouse from another checkout of this repository (e.g. `git worktree add /tmp/before main`)
  // to show a change's effect in the same run.
  const contenders = [
    { key: 'tollhouse', role: 'tollhouse', script: undefined as string | undefined },
    { key: 'memory', role: 'memory', script: undefined as string | undefined },
    ...(values.before === undefined
      ? []
      : [
          {
            key: 'before',
            role: 'tollhouse',
            script: path.resolve(values.before, 'bench/identity-tokens.ts'),
          },
        ]),
  ];
  const results: Record<string, Record<string, Tally>> = {};
  const databases: string[] = [];
  try {
    for (const [label, run, c] of [
      ['client-credentials tokens/s', clientCredentials, concurrency],
      ['auth code + PKCE flows/s', authCodeFlow, flowConcurrency],
    ] as const) {
      // The servers run side by side and take turns (order reversed every round), so load from
      // other work on the machine that comes and goes during the run falls on all alike.
      const servers: Record<string, Awaited<ReturnType<typeof startChild>>> = {};
      const row: Record<string, Tally> = {};
      try {
        for (const contender of contenders) {
          // Each tollhouse gets an empty database of its own.
          const db = new URL(dbUrl);
          db.pathname = `/${name}_${databases.length}`;
          await admin.query(`create database ${db.pathname.slice(1)}`);
          databases.push(db.pathname.slice(1));
          servers[contender.key] = await startChild(contender.role, db.href, contender.script);
          row[contender.key] = { done: 0, ms: 0, cpuMs: 0 };
        }
        const keys = contenders.map((x) => x.key);
        // Warm-up: JIT, connection pools, caches.
        for (const key of keys) await load(() => run(servers[key]!.info), 2, c);
        for (let round = 0; round < rounds; round++) {
          for (const key of round % 2 === 0 ? keys : [...keys].reverse()) {
            const server = servers[key]!;
            const tally = row[key]!;
            const cpuBefore = cpuMs(server.pid);
            const started = process.hrtime.bigint();
            tally.done += await load(() => run(server.info), seconds / rounds, c);
            tally.ms += Number(process.hrtime.bigint() - started) / 1e6;
            const cpuAfter = cpuMs(server.pid);
            tally.cpuMs =
              cpuBefore === null || cpuAfter === null || tally.cpuMs === null
                ? null
                : tally.cpuMs + cpuAfter - cpuBefore;
          }
        }
      } finally {
        for (const server of Object.values(servers)) server.stop();
      }
      results[label] = row;
    }
  } finally {
    await new Promise((r) => setTimeout(r, 500));
    for (const db of databases) await admin.query(`drop database if exists ${db} with (force)`);
    await admin.end();
  }

  const loadAfter = os.loadavg();
  console.log(
    `identity benchmark — ${new Date().toISOString()} — ${os.cpus().length} cpus (${os.cpus()[0]?.model}), node ${process.version}`,
  );
  console.log(
    `${seconds} s per server per measurement in ${rounds} alternating rounds, after 2 s warm-up; concurrency ${concurrency} (tokens), ${flowConcurrency} (flows); load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(1)).join(' ')} after`,
  );
  console.log(
    '| measurement | server | requests/s | ratio to in-memory | server CPU µs per request | CPU ratio (in-memory / server) |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  const names: Record<string, string> = {
    tollhouse: 'tollhouse (PostgreSQL)',
    memory: 'oidc-provider (in-memory)',
    before: `tollhouse (PostgreSQL), ${values.before ?? ''}`,
  };
  for (const [label, row] of Object.entries(results)) {
    const rate = (t: Tally) => (t.done * 1000) / t.ms;
    const cpu = (t: Tally) => (t.cpuMs === null ? null : (t.cpuMs * 1000) / t.done);
    const memory = row.memory!;
    for (const [key, tally] of Object.entries(row)) {
      const [ct, cm] = [cpu(tally), cpu(memory)];
      console.log(
        `| ${label} | ${names[key]} | ${rate(tally).toFixed(0)} | ${(rate(tally) / rate(memory)).toFixed(2)} | ${ct === null ? 'n/a' : ct.toFixed(0)} | ${ct === null || cm === null ? 'n/a' : (cm / ct).toFixed(2)} |`,
      );
    }
  }
  for (const [label, row] of Object.entries(results)) {
    const rate = (t: Tally) => (t.done * 1000) / t.ms;
    const cpu = (t: Tally) => (t.cpuMs === null ? NaN : (t.cpuMs * 1000) / t.done);
    const [ours, memory] = [row.tollhouse!, row.memory!];
    const tokens = label.startsWith('client');
    const what = tokens ? 'client-credentials tokens' : 'auth code + PKCE flows';
    report.target({
      target: `${what}/s ÷ in-memory oidc-provider`,
      ratio: rate(ours) / rate(memory),
      goal: tokens ? { op: '>=', limit: 1 } : null,
      detail: `${rate(ours).toFixed(0)} vs ${rate(memory).toFixed(0)} /s`,
    });
    report.target({
      target: `${what}, in-memory CPU ÷ tollhouse CPU per request`,
      ratio: cpu(memory) / cpu(ours),
      goal: tokens ? { op: '>=', limit: 1 } : null,
      detail: `${cpu(ours).toFixed(0)} vs ${cpu(memory).toFixed(0)} µs server CPU${tokens ? '' : ' (scrypt-bound)'}`,
    });
    if (row.before !== undefined) {
      report.target({
        target: `${what}, --before CPU ÷ this tree's CPU per request`,
        ratio: cpu(row.before) / cpu(ours),
        goal: null,
        detail: `${cpu(ours).toFixed(0)} vs ${cpu(row.before).toFixed(0)} µs`,
      });
    }
  }
  report.finish();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

main().then(
  () => {
    if (values.role === undefined) process.exit(0);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
