// No Docker engine runs where these tests run, so the wiring of docker/ is checked by reading
// the files: what the compose file passes to tollhouse must be settings config.ts knows, and
// the ports and URLs that connect the three services must agree.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SETTINGS, parseConfig } from '../src/config.ts';
import { ROOT } from './support/process.ts';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  ports?: string[];
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
}
const compose = parse(readFileSync(path.join(ROOT, 'docker/compose.yaml'), 'utf8')) as {
  services: Record<string, Service>;
};
const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
const { postgres, tollhouse, gateway } = compose.services;

/** Compose `${VAR:-default}` / `${VAR:?message}` → an example value, as compose would fill in. */
function interpolate(value: string): string {
  return value.replace(
    /\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}/g,
    (_, name: string, fallback?: string) =>
      fallback !== undefined
        ? fallback
        : name === 'TOLLHOUSE_SECRET'
          ? 'f'.repeat(64)
          : `example-${name}`,
  );
}

function flag(name: string): string {
  const arg = gateway!.command!.find((a) => a.startsWith(`-${name}=`));
  expect(arg, `gateway lacks -${name}`).toBeDefined();
  return interpolate(arg!.slice(name.length + 2));
}

describe('docker/compose.yaml', () => {
  it('runs PostgreSQL 16, tollhouse built from this repository, and a go-livepeer gateway', () => {
    expect(postgres!.image).toMatch(/^postgres:16/);
    expect(tollhouse!.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    expect(gateway!.image).toMatch(/^livepeer\/go-livepeer:/);
    expect(tollhouse!.depends_on?.postgres?.condition).toBe('service_healthy');
  });

  it('passes tollhouse only settings that config.ts knows, and they validate', () => {
    const known = new Set(Object.keys(SETTINGS));
    const env = Object.fromEntries(
      Object.entries(tollhouse!.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
    );
    expect(Object.keys(env).filter((name) => !known.has(name))).toEqual([]);
    const config = parseConfig(env);
    expect(new URL(config.database.url!).hostname).toBe('postgres');
    expect(config.gateway.url).toBe('http://gateway:9935');
  });

  it('publishes the port tollhouse listens on, and nothing of the gateway', () => {
    const port = tollhouse!.environment!.PORT;
    expect(tollhouse!.ports).toEqual([`${port}:${port}`]);
    expect(gateway!.ports).toBeUndefined();
  });

  it('points the gateway at tollhouse’s signer listener, without a path, on a pinned release', () => {
    // go-livepeer resolves the signer paths against -remoteSignerUrl with an absolute path,
    // which drops any path: scheme, host and port only.
    const signer = new URL(flag('remoteSignerUrl'));
    expect(signer.hostname).toBe('tollhouse');
    expect(signer.port).toBe(tollhouse!.environment!.SIGNER_PORT);
    expect(signer.pathname).toBe('/');
    expect(flag('remoteSignerUrl')).not.toMatch(/:\d+\//);
    expect(tollhouse!.ports).not.toContainEqual(expect.stringContaining(signer.port));
    expect(gateway!.image).toMatch(/^livepeer\/go-livepeer:v\d+\.\d+\.\d+$/);
  });

  it('bootstraps the gateway’s bearer token in one `up`: a one-shot writes it, the gateway reads it', () => {
    const oneShot = compose.services['gateway-credential'] as Service & {
      volumes?: string[];
      entrypoint?: string[];
    };
    const gatewayVolumes = (gateway as Service & { volumes?: string[] }).volumes ?? [];
    expect(oneShot.image).toBe(tollhouse!.image);
    expect(oneShot.depends_on?.tollhouse?.condition).toBe('service_healthy');
    expect(gateway!.depends_on?.['gateway-credential']?.condition).toBe(
      'service_completed_successfully',
    );
    const config = flag('config');
    const script = oneShot.command!.join('\n');
    expect(script).toContain(`conf=${config}`);
    expect(script).toContain('--scope signer');
    expect(script).toContain("'remoteSignerHeaders Authorization:Bearer '");
    // The same named volume, read-only for the gateway; no token in the environment.
    const dir = path.posix.dirname(config);
    expect(oneShot.volumes).toEqual([`gateway-credential:${dir}`]);
    expect(gatewayVolumes).toEqual([`gateway-credential:${dir}:ro`]);
    expect(gateway!.command!.join(' ')).not.toMatch(/remoteSignerHeaders|TOLLHOUSE_GATEWAY_TOKEN/);
    expect(dockerfile).toContain(`chown node:node /data ${dir}`);
  });

  it("points the gateway's stream and live AI auth webhooks at tollhouse, with its secret", () => {
    const port = tollhouse!.environment!.PORT;
    const secret = interpolate(tollhouse!.environment!.LIVEPEER_WEBHOOK_SECRET!);
    expect(secret.length).toBeGreaterThanOrEqual(16);
    // -authWebhookUrl sends no headers: the secret rides in the URL.
    const streamAuth = new URL(flag('authWebhookUrl'));
    expect([streamAuth.hostname, streamAuth.port, streamAuth.pathname]).toEqual([
      'tollhouse',
      port,
      '/webhooks/livepeer/stream-auth',
    ]);
    expect(streamAuth.searchParams.get('secret')).toBe(secret);
    const liveAi = new URL(flag('liveAIAuthWebhookUrl'));
    expect([liveAi.hostname, liveAi.port, liveAi.pathname]).toEqual([
      'tollhouse',
      port,
      '/webhooks/livepeer/live-ai-auth',
    ]);
    expect(flag('liveAIAuthApiKey')).toBe(secret);
  });

  it('points the front door at the port the gateway listens on', () => {
    const httpAddr = flag('httpAddr');
    const upstream = new URL(tollhouse!.environment!.GATEWAY_URL!);
    expect(upstream.hostname).toBe('gateway');
    expect(upstream.port).toBe(httpAddr.split(':')[1]);
    expect(gateway!.command).toContain('-gateway');
  });
});

describe('docker/Dockerfile', () => {
  it('runs Node 24 as a non-root user, with a health check on the port it exposes', () => {
    expect(dockerfile).toMatch(/^FROM node:24-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    const exposed = /^EXPOSE (\d+)$/m.exec(dockerfile)?.[1];
    expect(exposed).toBe(/PORT=(\d+)/.exec(dockerfile)?.[1]);
    expect(exposed).toBe(SETTINGS.PORT.default);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/healthz/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "src\/main.ts"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["serve"\]$/m);
  });

  it('copies everything the service reads at run time', () => {
    for (const needed of ['src', 'db', 'openapi.yaml', 'package.json', 'package-lock.json']) {
      expect(dockerfile).toMatch(new RegExp(`^COPY .*\\b${needed.replace('.', '\\.')}\\b`, 'm'));
    }
    const env = /^ENV ([\s\S]*?)\n\n/m.exec(dockerfile)?.[1] ?? '';
    const names = [...env.matchAll(/(\w+)=/g)].map((m) => m[1]).filter((n) => n !== 'NODE_ENV');
    const known = new Set(Object.keys(SETTINGS));
    expect(names.filter((n) => !known.has(n!))).toEqual([]);
  });
});
