// The authorization matrix: every operation in openapi.yaml × every principal kind × the
// caller's own ids and another account's, against the answer the route's declaration gives.
// A documented operation without a declaration, or without a row here, fails the test.
import { readFileSync } from 'node:fs';
import * as oidc from 'openid-client';
import { z } from 'zod';
import { Router, defineRoute } from '../../src/platform/http.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_TOKEN_TYPE, APP_USER_TOKEN_TYPE } from '../../src/identity/index.ts';
import { USAGE_EVENT_TYPE } from '../../src/metering/index.ts';
import type { Access, PrincipalKind } from '../../src/platform/authz.ts';
import {
  PRINCIPAL_KINDS,
  declaredRoutes,
  renderAuthorizationTable,
} from '../../src/platform/authz.ts';
import { adminKey, bearer, call, issueKey } from '../support/credentials.ts';
import { loadSpec, specOperations } from '../support/openapi.ts';
import { discover, startIdentityApp } from '../identity/support.ts';
import type { IdentityTestApp } from '../identity/support.ts';
import { accountWithPassword } from '../support/fixtures.ts';
import { startSmtp } from '../identity/smtp.ts';
import type { TestSmtp } from '../identity/smtp.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ORIGIN = 'https://shop.example';
const SCOPES = ['gateway', 'usage:read', 'usage:write', 'billing:read', 'signer'] as const;

let t: IdentityTestApp;
let smtp: TestSmtp;
let operatorSecret: string;
let planId: string;

/** One customer's ids and credentials, one of each kind. */
interface Customer {
  accountId: string;
  appId: string;
  clientId: string;
  externalUserId: string;
  statementId: string;
  /** A webhook endpoint of the account's, and one delivery of it (a test event). */
  endpointId: string;
  deliveryId: string;
  headers: Record<Exclude<PrincipalKind, 'operator'>, Record<string, string>>;
}
const customers: Record<'own' | 'foreign', Customer> = {} as never;

async function customer(name: string): Promise<Customer> {
  const account = await accountWithPassword(t, `${name}-${Date.now()}@example.com`);
  const key = await issueKey(t, account.id, { scopes: [...SCOPES] });
  const browser = await issueKey(t, account.id, {
    kind: 'browser',
    scopes: ['gateway'],
    allowedOrigins: [ORIGIN],
    allowedResources: ['text-to-image'],
  });
  const { app, clientSecret } = await t.app.identity.apps.create(
    { name: `${name} backend`, kind: 'machine', ownerAccountId: account.id, scopes: [...SCOPES] },
    { id: 'test' },
  );
  const config = await discover(t, app.clientId, clientSecret);
  const appToken = await oidc.clientCredentialsGrant(config, { scope: SCOPES.join(' ') });
  const externalUserId = `${name}-user-1`;
  const endUser = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token: externalUserId,
    subject_token_type: APP_USER_TOKEN_TYPE,
  });
  const derived = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token: key.secret,
    subject_token_type: API_KEY_TOKEN_TYPE,
  });
  return {
    accountId: account.id,
    appId: app.id,
    clientId: app.clientId,
    externalUserId,
    statementId: '',
    ...(await webhookEndpoint(account.id)),
    headers: {
      account: bearer(key.secret),
      app_client: bearer(appToken.access_token),
      app_end_user: bearer(endUser.access_token),
      browser_key: bearer(browser.secret, { origin: ORIGIN }),
      derived: bearer(derived.access_token),
    },
  };
}

async function webhookEndpoint(accountId: string) {
  const caller = { actor: 'test', accountId, operator: false, requestId: null };
  const { endpoint } = await t.app.notifications.service.create(caller, {
    url: 'https://hooks.example.com/matrix',
  });
  const delivery = await t.app.notifications.service.sendTest(caller, endpoint.id);
  return { endpointId: endpoint.id, deliveryId: delivery.id };
}

beforeAll(async () => {
  smtp = await startSmtp();
  t = await startIdentityApp({
    BILLING_ETH_USD_RATE: '3000',
    BILLING_AUTO_CLOSE: 'false',
    // Account holders may invite (POST /v1/invitations), which needs the invite policy and mail.
    SIGNUP_POLICY: 'invite',
    SIGNUP_OWNER_INVITATIONS: 'true',
    OWNER_INVITATIONS_PER_ACCOUNT_PER_DAY: '1000',
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Matrix <no-reply@example.com>',
  });
  operatorSecret = (await adminKey(t)).secret;
  customers.own = await customer('own');
  customers.foreign = await customer('foreign');
  const plan = await call(t, 'POST', '/v1/plans', {
    headers: bearer(operatorSecret),
    body: { name: 'Matrix' },
  });
  expect(plan.status).toBe(201);
  planId = plan.body.id;
  // A closed month gives each account a statement.
  const occurredAt = new Date(Date.UTC(2026, 0, 15));
  await t.app.metering.service.record(
    (['own', 'foreign'] as const).map((who) => ({
      source: 'urn:test:matrix',
      eventId: `seed-${who}`,
      occurredAt,
      accountId: customers[who].accountId,
      appId: null,
      keyId: null,
      clientId: null,
      endUserId: null,
      pipeline: 'text-to-image',
      modelId: null,
      unit: 'requests' as never,
      quantity: 1n,
      feeWei: 1n,
      status: 200,
      latencyMs: 1,
      attributes: {},
    })),
  );
  await t.app.billing.service.closeMonth('2026-01');
  for (const who of ['own', 'foreign'] as const) {
    const page = await t.app.billing.service.statements({ accountId: customers[who].accountId }, 1);
    customers[who].statementId = page[0]!.id;
  }
});
afterAll(async () => {
  await t?.close();
  await smtp?.close();
});

let counter = 0;
const unique = () => `${Date.now()}-${++counter}`;

/** A fresh thing of `who`'s, for operations that use it up (revoke, rotate, delete). */
async function freshKey(who: Customer) {
  return (await issueKey(t, who.accountId, { scopes: ['gateway'] })).key.id;
}
async function freshStream(who: Customer) {
  const created = await call(t, 'POST', '/v1/streams', {
    headers: who.headers.account,
    body: { name: 'matrix' },
  });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

function usageEvent(subject: string) {
  return [
    {
      specversion: '1.0',
      type: USAGE_EVENT_TYPE,
      source: 'urn:test:matrix',
      id: `ev-${unique()}`,
      time: new Date().toISOString(),
      subject,
      data: { pipeline: 'text-to-image', unit: 'requests', quantity: '1', fee_wei: '1' },
    },
  ];
}

/** A refresh grant of `who`'s as oidc-provider stores it, for the one operation that ends one. */
/** A passkey row of `who` (the matrix checks who may name it, not WebAuthn). */
async function freshPasskey(who: Customer) {
  const id = `pk_matrix${unique().replace(/\D/g, '')}`;
  await t.app.database.db
    .insertInto('account_passkeys')
    .values({
      id,
      account_id: who.accountId,
      credential_id: `cred-${id}`,
      public_key: 'AA',
      sign_count: 0n,
      transports: '[]',
      device_type: 'singleDevice',
      backed_up: false,
      name: 'Matrix',
      created_at: new Date(),
    })
    .execute();
  return id;
}

async function freshGrant(who: Customer) {
  const grantId = `matrix${unique().replace(/\D/g, '')}`;
  const iat = Math.floor(Date.now() / 1000);
  await t.app.database.db
    .insertInto('oidc_payloads')
    .values({
      model: 'RefreshToken',
      id: `matrix-${grantId}`,
      payload: JSON.stringify({ accountId: who.accountId, grantId, clientId: who.clientId, iat }),
      grant_id: grantId,
      user_code: null,
      uid: null,
      expires_at: new Date(Date.now() + 3_600_000),
    })
    .execute();
  return `grt_${grantId}`;
}

/** An upstream identity linked to `who`'s account (its id, `idn_…`). */
async function freshIdentity(who: Customer) {
  const id = `idn_matrix${unique().replace(/\D/g, '')}`;
  await t.app.database.db
    .insertInto('account_identities')
    .values({
      id,
      provider: 'matrix',
      subject: id,
      account_id: who.accountId,
      email: null,
      linked_at: new Date(),
      last_used_at: null,
    })
    .execute();
  return id;
}

// The self-service routes that take the current password get a wrong one: an allowed caller
// gets its 400 `WrongPassword` (nothing is changed or deleted), a refused one its 403.
const WRONG_PASSWORD = 'not the password of anyone';

interface Row {
  /** The request, built with the ids of `who` (the caller's own customer, or the other). */
  request(
    who: Customer,
  ): Promise<{ path: string; body?: unknown }> | { path: string; body?: unknown };
  /** The operation touches no id of anyone's: the foreign variant is the same request. */
  noIds?: true;
}

const rows: Record<string, Row> = {
  'GET /v1/usage': { request: () => ({ path: '/v1/usage' }), noIds: true },
  'GET /v1/usage/events': { request: () => ({ path: '/v1/usage/events' }), noIds: true },
  'POST /v1/usage/events': {
    request: (who) => ({ path: '/v1/usage/events', body: usageEvent(who.accountId) }),
  },
  'POST /v1/keys': {
    request: (who) => ({
      path: '/v1/keys',
      body: { name: 'm', account_id: who.accountId, app_id: who.appId },
    }),
  },
  'GET /v1/keys': { request: (who) => ({ path: `/v1/keys?account_id=${who.accountId}` }) },
  'GET /v1/keys/{id}': { request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}` }) },
  'PATCH /v1/keys/{id}': {
    request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}`, body: { name: 'x' } }),
  },
  'GET /v1/keys/{id}/limits': {
    request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}/limits` }),
  },
  'PUT /v1/keys/{id}/limits': {
    request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}/limits`, body: {} }),
  },
  'POST /v1/keys/{id}/revoke': {
    request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}/revoke` }),
  },
  'POST /v1/keys/{id}/rotate': {
    request: async (who) => ({ path: `/v1/keys/${await freshKey(who)}/rotate` }),
  },
  'POST /v1/apps': {
    request: (who) => ({
      path: '/v1/apps',
      body: { name: 'm', kind: 'machine', owner_account_id: who.accountId },
    }),
  },
  'GET /v1/apps': { request: () => ({ path: '/v1/apps' }), noIds: true },
  'GET /v1/apps/{id}': { request: (who) => ({ path: `/v1/apps/${who.appId}` }) },
  'PATCH /v1/apps/{id}': {
    request: (who) => ({ path: `/v1/apps/${who.appId}`, body: { name: 'renamed' } }),
  },
  'POST /v1/apps/{id}/rotate-secret': {
    request: (who) => ({
      path: `/v1/apps/${who.appId}/rotate-secret`,
      body: { grace_seconds: 3600 },
    }),
  },
  'GET /v1/apps/{id}/users': { request: (who) => ({ path: `/v1/apps/${who.appId}/users` }) },
  'PUT /v1/apps/{id}/users/{external_id}': {
    request: (who) => ({ path: `/v1/apps/${who.appId}/users/${who.externalUserId}` }),
  },
  'PATCH /v1/apps/{id}/users/{external_id}': {
    request: (who) => ({
      path: `/v1/apps/${who.appId}/users/${who.externalUserId}`,
      body: { status: 'active' },
    }),
  },
  'GET /v1/accounts': { request: () => ({ path: '/v1/accounts' }), noIds: true },
  'GET /v1/accounts/{id}': { request: (who) => ({ path: `/v1/accounts/${who.accountId}` }) },
  'PATCH /v1/accounts/{id}': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}`, body: { name: 'Renamed' } }),
  },
  'POST /v1/account/password': {
    request: () => ({
      path: '/v1/account/password',
      body: { current_password: WRONG_PASSWORD, new_password: 'a new passphrase' },
    }),
    noIds: true,
  },
  'POST /v1/account/email': {
    request: () => ({
      path: '/v1/account/email',
      body: { current_password: WRONG_PASSWORD, email: `moved-${unique()}@example.com` },
    }),
    noIds: true,
  },
  'GET /v1/account': { request: () => ({ path: '/v1/account' }), noIds: true },
  // The matrix's accounts are confirmed: an allowed caller gets 409 AlreadyVerified.
  'POST /v1/account/verification-email': {
    request: () => ({ path: '/v1/account/verification-email' }),
    noIds: true,
  },
  'GET /v1/account/sessions': { request: () => ({ path: '/v1/account/sessions' }), noIds: true },
  'DELETE /v1/account/sessions': {
    request: () => ({ path: '/v1/account/sessions' }),
    noIds: true,
  },
  'DELETE /v1/account/sessions/{id}': {
    request: async (who) => ({ path: `/v1/account/sessions/${await freshGrant(who)}` }),
  },
  'GET /v1/account/identities': {
    request: () => ({ path: '/v1/account/identities' }),
    noIds: true,
  },
  // Not a provider id: an allowed caller gets its 400 after authorization (no provider is
  // configured here to start a link with), a refused one its 403.
  'POST /v1/account/identities': {
    request: () => ({ path: '/v1/account/identities', body: { provider: 'Not An Id' } }),
    noIds: true,
  },
  'DELETE /v1/account/identities/{id}': {
    request: async (who) => ({ path: `/v1/account/identities/${await freshIdentity(who)}` }),
  },
  'POST /v1/account/delete': {
    request: () => ({ path: '/v1/account/delete', body: { current_password: WRONG_PASSWORD } }),
    noIds: true,
  },
  'GET /v1/account/second-factor': {
    request: () => ({ path: '/v1/account/second-factor' }),
    noIds: true,
  },
  'POST /v1/account/second-factor/totp': {
    request: () => ({ path: '/v1/account/second-factor/totp' }),
    noIds: true,
  },
  'POST /v1/account/second-factor/totp/confirm': {
    request: async (who) => {
      // A set-up under way, so an allowed caller's wrong code is a 400, not "nothing to confirm".
      await t.app.identity.secondFactors.beginTotp(
        { accountId: who.accountId, actor: 'test', requestId: null },
        'matrix',
      );
      return { path: '/v1/account/second-factor/totp/confirm', body: { code: '000000' } };
    },
    noIds: true,
  },
  'POST /v1/account/second-factor/totp/remove': {
    request: () => ({ path: '/v1/account/second-factor/totp/remove', body: { code: '000000' } }),
    noIds: true,
  },
  'POST /v1/account/second-factor/recovery-codes': {
    request: () => ({ path: '/v1/account/second-factor/recovery-codes' }),
    noIds: true,
  },
  'GET /v1/account/passkeys': { request: () => ({ path: '/v1/account/passkeys' }), noIds: true },
  'POST /v1/account/passkeys': {
    request: () => ({ path: '/v1/account/passkeys', body: { name: 'Laptop', response: {} } }),
    noIds: true,
  },
  'POST /v1/account/passkeys/options': {
    request: () => ({ path: '/v1/account/passkeys/options' }),
    noIds: true,
  },
  'PATCH /v1/account/passkeys/{id}': {
    request: async (who) => ({
      path: `/v1/account/passkeys/${await freshPasskey(who)}`,
      body: { name: 'Renamed' },
    }),
  },
  'DELETE /v1/account/passkeys/{id}': {
    request: async (who) => ({ path: `/v1/account/passkeys/${await freshPasskey(who)}` }),
  },
  'POST /v1/invitations': {
    request: () => ({
      path: '/v1/invitations',
      body: { email: `invitee-${unique()}@example.com` },
    }),
    noIds: true,
  },
  'GET /v1/signer': { request: () => ({ path: '/v1/signer' }), noIds: true },
  'GET /v1/signer/funding': { request: () => ({ path: '/v1/signer/funding' }), noIds: true },
  // The signer is off in this app: an allowed caller's empty body is a 400 before any chain read.
  ...Object.fromEntries(
    ['fund', 'fund-for', 'unlock', 'cancel-unlock', 'withdraw'].map((op) => [
      `POST /v1/signer/${op}`,
      { request: () => ({ path: `/v1/signer/${op}`, body: {} }), noIds: true },
    ]),
  ),
  'GET /v1/plans': { request: () => ({ path: '/v1/plans' }), noIds: true },
  'POST /v1/plans': { request: () => ({ path: '/v1/plans', body: { name: 'p' } }), noIds: true },
  'GET /v1/plans/{id}': { request: () => ({ path: `/v1/plans/${planId}` }), noIds: true },
  'PUT /v1/plans/{id}/limits': {
    request: () => ({ path: `/v1/plans/${planId}/limits`, body: {} }),
    noIds: true,
  },
  'GET /v1/accounts/{id}/subscription': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/subscription` }),
  },
  'PUT /v1/accounts/{id}/subscription': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/subscription`,
      body: { plan_id: planId },
    }),
  },
  'GET /v1/accounts/{id}/balance': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/balance` }),
  },
  'POST /v1/accounts/{id}/credits': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/credits`,
      body: { amount_usd_micros: '1', reference: unique() },
    }),
  },
  'GET /v1/accounts/{id}/prepaid': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/prepaid` }),
  },
  'PUT /v1/accounts/{id}/billing-mode': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/billing-mode`,
      body: { mode: 'postpaid' },
    }),
  },
  'PUT /v1/accounts/{id}/auto-recharge': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/auto-recharge`,
      body: {
        enabled: false,
        threshold_usd_micros: '0',
        amount_usd_micros: '0',
        monthly_max_usd_micros: '0',
      },
    }),
  },
  // Stripe is not configured here: an amount that is not allowed answers 400 once the caller
  // is authorized (a refused caller gets 403 before the amount is looked at).
  'POST /v1/accounts/{id}/checkout': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/checkout`,
      body: { amount_usd_micros: '1' },
    }),
  },
  'GET /v1/billing/recharges': {
    request: () => ({ path: '/v1/billing/recharges' }),
    noIds: true,
  },
  'POST /v1/accounts/{id}/setup-checkout': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/setup-checkout` }),
  },
  'GET /v1/accounts/{id}/ledger': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/ledger` }),
  },
  'GET /v1/accounts/{id}/alert-emails': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/alert-emails` }),
  },
  'PUT /v1/accounts/{id}/alert-emails': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/alert-emails`,
      body: { muted_event_types: ['balance.low'] },
    }),
  },
  'GET /v1/webhooks/health': {
    request: () => ({ path: '/v1/webhooks/health' }),
    noIds: true,
  },
  'GET /v1/accounts/{id}/spend-caps': {
    request: (who) => ({ path: `/v1/accounts/${who.accountId}/spend-caps` }),
  },
  'PUT /v1/accounts/{id}/spend-caps': {
    request: (who) => ({
      path: `/v1/accounts/${who.accountId}/spend-caps`,
      body: { monthly_cap_wei: null },
    }),
  },
  'GET /v1/spend/check': { request: () => ({ path: '/v1/spend/check' }), noIds: true },
  'GET /v1/billing/stripe-sync': {
    request: () => ({ path: '/v1/billing/stripe-sync' }),
    noIds: true,
  },
  'GET /v1/statements': {
    request: (who) => ({ path: `/v1/statements?account_id=${who.accountId}` }),
  },
  'GET /v1/statements/{id}': { request: (who) => ({ path: `/v1/statements/${who.statementId}` }) },
  'GET /v1/statements/{id}/export': {
    request: (who) => ({ path: `/v1/statements/${who.statementId}/export?format=json` }),
  },
  'POST /v1/streams': {
    request: () => ({ path: '/v1/streams', body: { name: 's' } }),
    noIds: true,
  },
  'GET /v1/streams': { request: () => ({ path: '/v1/streams' }), noIds: true },
  // The go-livepeer remote-signer protocol (no ids; the signer is off in this app, so an
  // allowed caller gets its 503 after authorization, a refused one 403).
  'POST /sign-orchestrator-info': {
    request: () => ({ path: '/sign-orchestrator-info' }),
    noIds: true,
  },
  'POST /generate-live-payment': {
    request: () => ({ path: '/generate-live-payment', body: {} }),
    noIds: true,
  },
  'GET /discover-orchestrators': {
    request: () => ({ path: '/discover-orchestrators' }),
    noIds: true,
  },
  'POST /v1/webhooks/endpoints': {
    request: (who) => ({
      path: '/v1/webhooks/endpoints',
      body: { url: 'https://hooks.example.com/m', account_id: who.accountId },
    }),
  },
  'GET /v1/webhooks/endpoints': {
    request: (who) => ({ path: `/v1/webhooks/endpoints?account_id=${who.accountId}` }),
  },
  'GET /v1/webhooks/endpoints/{id}': {
    request: (who) => ({ path: `/v1/webhooks/endpoints/${who.endpointId}` }),
  },
  'PATCH /v1/webhooks/endpoints/{id}': {
    request: (who) => ({
      path: `/v1/webhooks/endpoints/${who.endpointId}`,
      body: { description: 'renamed' },
    }),
  },
  'DELETE /v1/webhooks/endpoints/{id}': {
    request: async (who) => ({
      path: `/v1/webhooks/endpoints/${(await webhookEndpoint(who.accountId)).endpointId}`,
    }),
  },
  'POST /v1/webhooks/endpoints/{id}/rotate-secret': {
    request: (who) => ({ path: `/v1/webhooks/endpoints/${who.endpointId}/rotate-secret` }),
  },
  'POST /v1/webhooks/endpoints/{id}/enable': {
    request: (who) => ({ path: `/v1/webhooks/endpoints/${who.endpointId}/enable` }),
  },
  'POST /v1/webhooks/endpoints/{id}/test': {
    request: (who) => ({ path: `/v1/webhooks/endpoints/${who.endpointId}/test` }),
  },
  'GET /v1/webhooks/endpoints/{id}/deliveries': {
    request: (who) => ({ path: `/v1/webhooks/endpoints/${who.endpointId}/deliveries` }),
  },
  'POST /v1/webhooks/endpoints/{id}/deliveries/{delivery_id}/resend': {
    request: (who) => ({
      path: `/v1/webhooks/endpoints/${who.endpointId}/deliveries/${who.deliveryId}/resend`,
    }),
  },
  'DELETE /v1/streams/{id}': {
    request: async (who) => ({ path: `/v1/streams/${await freshStream(who)}` }),
  },
};

function declaration(operation: string): Access | undefined {
  const [method, path] = operation.split(' ') as [string, string];
  const koaPath = path.replace(/\{(\w+)\}/g, ':$1');
  return declaredRoutes(t.app.router).find(
    (r) => r.method.toUpperCase() === method && r.path === koaPath,
  )?.access;
}

function headersFor(kind: PrincipalKind): Record<string, string> {
  return kind === 'operator' ? bearer(operatorSecret) : customers.own.headers[kind];
}

describe('authorization matrix', () => {
  it('has a declaration for every documented operation, and a row here for each', () => {
    const operations = specOperations(loadSpec());
    const undeclared = operations.filter((op) => declaration(op) === undefined);
    expect(undeclared, 'operations without an access declaration').toEqual([]);
    const open = operations.filter((op) => declaration(op)?.kinds !== 'anyone');
    expect(
      open.filter((op) => rows[op] === undefined),
      'operations missing a row',
    ).toEqual([]);
  });

  it("names in openapi.yaml's x-tollhouse-access exactly the kinds each route declares", () => {
    const spec = loadSpec() as unknown as {
      paths: Record<string, Record<string, { 'x-tollhouse-access'?: string }>>;
    };
    const stale: string[] = [];
    for (const operation of specOperations(loadSpec())) {
      const access = declaration(operation);
      if (access === undefined || access.kinds === 'anyone') continue;
      const [method, path] = operation.split(' ') as [string, string];
      const text = spec.paths[path]?.[method.toLowerCase()]?.['x-tollhouse-access'] ?? '';
      const named = PRINCIPAL_KINDS.filter((kind) => text.includes(`\`${kind}\``));
      if (named.join() !== access.kinds.join()) stale.push(`${operation}: ${named.join()}`);
    }
    expect(stale).toEqual([]);
  });

  it('refuses to register a route that declares no access rule', () => {
    const spec = { method: 'get', path: '/v1/undeclared', response: z.object({}) };
    expect(() => defineRoute(new Router(), spec as never, () => ({}))).toThrow(
      /declares no access rule/,
    );
  });

  it('is what docs/authorization.md says (regenerate with npm run docs:authz)', () => {
    const committed = readFileSync(new URL('../../docs/authorization.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderAuthorizationTable(declaredRoutes(t.app.router)));
  });

  it('answers every operation × principal kind × own and foreign ids as declared', async () => {
    const mismatches: string[] = [];
    let requests = 0;
    for (const operation of specOperations(loadSpec())) {
      const access = declaration(operation);
      const row = rows[operation];
      if (access === undefined || access.kinds === 'anyone' || row === undefined) continue;
      const [method] = operation.split(' ') as [string];
      for (const kind of PRINCIPAL_KINDS) {
        const allowed = access.kinds.includes(kind);
        for (const whose of row.noIds ? (['own'] as const) : (['own', 'foreign'] as const)) {
          const { path, body } = await row.request(customers[whose]);
          const response = await call(t, method, path, { headers: headersFor(kind), body });
          requests++;
          const { status } = response;
          let ok: boolean;
          let expected: string;
          // The signer protocol answers in go-livepeer's shape, {"error":{"message"}}.
          const goLivepeer = typeof response.body?.error?.message === 'string';
          if (!allowed) {
            expected = '403';
            ok = status === 403 && (response.body?.error === 'Forbidden' || goLivepeer);
          } else if (whose === 'own' || kind === 'operator') {
            expected = 'not 401/403/404';
            ok = ![401, 403, 404].includes(status) && status < 500;
            // A signer that is not configured answers 503 once the caller is authorized.
            if (goLivepeer && status === 503)
              ok = /no keystore|no orchestrators known/.test(response.body.error.message);
            // Save a card takes no input to refuse: an authorized caller reaches the Stripe
            // step, which this app (no STRIPE_SECRET_KEY) answers 503.
            if (operation === 'POST /v1/accounts/{id}/setup-checkout' && status === 503)
              ok = response.body?.error === 'StripeNotConfigured';
            // Ingest answers 200 with per-event results: the event itself must be accepted.
            if (operation === 'POST /v1/usage/events') ok &&= response.body?.accepted === 1;
          } else {
            expected = '403 or 404';
            ok = status === 403 || status === 404;
          }
          if (!ok) {
            mismatches.push(
              `${operation} as ${kind} with ${whose} ids: expected ${expected}, got ${status} ${JSON.stringify(response.body)?.slice(0, 160)}`,
            );
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(requests).toBeGreaterThan(300);
  }, 300_000);
});
