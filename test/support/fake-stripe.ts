// A small stand-in for Stripe's API, for tests: a real HTTP server that the real `stripe` SDK
// talks to (host/port/protocol options). It checks what it receives — the secret key, form
// encoding, an Idempotency-Key on every POST — replies in Stripe's shapes, replays a repeated
// Idempotency-Key with the original response (and refuses the same key with other parameters,
// as Stripe does), and can inject failures: an error answer, or a "crash" (the request is
// processed but the connection is dropped before the answer, as if our process died).
// Prepaid credit adds Checkout Sessions (completed by the test, as a customer paying would),
// PaymentIntents (retrieve; off-session create, declined for a card in `declineCards`),
// refunds and disputes, and webhook events signed as Stripe signs them. Checkout in `setup`
// mode saves a card (a SetupIntent with a payment method). Every session's `url` is a hosted
// page on this server (`/pay/<session>`) with a button that pays (or saves the card) and sends
// the browser to the session's success_url, as Stripe's hosted Checkout does; the test then
// plays Stripe's webhook.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  params: Record<string, string>;
  replayed: boolean;
}

export interface FakeStripe {
  url: string;
  secretKey: string;
  requests: RecordedRequest[];
  customers: Map<string, Record<string, unknown>>;
  invoices: Map<string, Record<string, unknown>>;
  invoiceItems: Map<string, Record<string, unknown>>;
  checkoutSessions: Map<string, Record<string, unknown>>;
  paymentIntents: Map<string, Record<string, unknown>>;
  setupIntents: Map<string, Record<string, unknown>>;
  /** Payment methods whose off-session PaymentIntents are declined (402 card_error). */
  declineCards: Set<string>;
  /** The customer pays a session with `paymentMethod`: a succeeded PaymentIntent; the session. */
  completeCheckout(sessionId: string, paymentMethod?: string): Record<string, unknown>;
  /** The customer saves `paymentMethod` in a setup-mode session: a succeeded SetupIntent. */
  completeSetup(sessionId: string, paymentMethod?: string): Record<string, unknown>;
  /** A refund of `cents` of the PaymentIntent's charge: the charge, as `charge.refunded` sends it. */
  refund(paymentIntentId: string, cents: number): Record<string, unknown>;
  /** A dispute of `cents` of the PaymentIntent's charge, as `charge.dispute.created` sends it. */
  dispute(paymentIntentId: string, cents: number): Record<string, unknown>;
  /** An event as Stripe sends it, and its body and Stripe-Signature header signed at `at`. */
  event(
    type: string,
    object: Record<string, unknown>,
    secret: string,
    at: Date,
  ): { id: string; body: string; signature: string };
  /** The next `count` POSTs to `pathPattern` answer 500 without doing anything. */
  failNext(pathPattern: RegExp, count?: number): void;
  /**
   * The next `count` POSTs to `pathPattern` are processed (or replayed), then the connection
   * is destroyed. The SDK retries a closed connection once by itself, so 2 looks, to the
   * caller, like a process that died after Stripe acted and before it heard the answer.
   */
  crashAfterNext(pathPattern: RegExp, count?: number): void;
  /** Requests that broke the rules (missing key, wrong auth …): a test asserts it is empty. */
  violations: string[];
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function metadataOf(params: Record<string, string>) {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    const m = /^metadata\[(.+)\]$/.exec(k);
    if (m) metadata[m[1]!] = v;
  }
  return metadata;
}

export async function startFakeStripe(): Promise<FakeStripe> {
  const secretKey = `sk_test_${randomBytes(12).toString('hex')}`;
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  const customers = new Map<string, Record<string, unknown>>();
  const invoices = new Map<string, Record<string, unknown>>();
  const invoiceItems = new Map<string, Record<string, unknown>>();
  const checkoutSessions = new Map<string, Record<string, unknown>>();
  const paymentIntents = new Map<string, Record<string, unknown>>();
  const charges = new Map<string, Record<string, unknown>>();
  const setupIntents = new Map<string, Record<string, unknown>>();
  const declineCards = new Set<string>();
  const idempotency = new Map<string, { hash: string; status: number; body: string }>();
  const failures: Array<{ pattern: RegExp; count: number }> = [];
  const crashes: Array<{ pattern: RegExp; count: number }> = [];
  const created = Math.floor(Date.now() / 1000);
  // Known once the server listens; hosted Checkout pages live on it.
  let baseUrl = '';

  function newIntent(
    amount: number,
    currency: string,
    customer: string,
    paymentMethod: string,
    metadata: Record<string, string>,
  ) {
    const charge = {
      id: id('ch'),
      object: 'charge',
      amount,
      amount_refunded: 0,
      currency,
      payment_intent: '',
      refunds: { object: 'list', data: [] as Array<Record<string, unknown>> },
    };
    const pi = {
      id: id('pi'),
      object: 'payment_intent',
      created,
      amount,
      amount_received: amount,
      currency,
      customer,
      payment_method: paymentMethod,
      status: 'succeeded',
      latest_charge: charge.id,
      metadata,
    };
    charge.payment_intent = pi.id;
    charges.set(charge.id, charge);
    paymentIntents.set(pi.id, pi);
    return pi;
  }
  const chargeOf = (paymentIntentId: string) => {
    const pi = paymentIntents.get(paymentIntentId);
    const charge = pi === undefined ? undefined : charges.get(String(pi.latest_charge));
    if (charge === undefined) throw new Error(`fake Stripe: no charge for ${paymentIntentId}`);
    return charge as {
      id: string;
      amount: number;
      amount_refunded: number;
      currency: string;
      refunds: { data: Array<Record<string, unknown>> };
    };
  };

  function handle(method: string, path: string, params: Record<string, string>): [number, unknown] {
    if (method === 'POST' && path === '/v1/customers') {
      const customer = {
        id: id('cus'),
        object: 'customer',
        created,
        description: params.description ?? null,
        metadata: metadataOf(params),
      };
      customers.set(customer.id, customer);
      return [200, customer];
    }
    if (method === 'POST' && path === '/v1/invoices') {
      if (!customers.has(params.customer ?? ''))
        return [400, stripeError('invalid_request_error', 'No such customer')];
      const invoice = {
        id: id('in'),
        object: 'invoice',
        created,
        customer: params.customer,
        status: 'draft',
        collection_method: params.collection_method,
        auto_advance: params.auto_advance === 'true',
        pending_invoice_items_behavior: params.pending_invoice_items_behavior,
        metadata: metadataOf(params),
      };
      invoices.set(invoice.id, invoice);
      return [200, invoice];
    }
    if (method === 'POST' && path === '/v1/invoiceitems') {
      const invoice = invoices.get(params.invoice ?? '');
      if (invoice === undefined)
        return [400, stripeError('invalid_request_error', 'No such invoice')];
      if (invoice.status !== 'draft')
        return [400, stripeError('invalid_request_error', 'Invoice is not a draft')];
      if (!/^-?\d+(\.\d{1,12})?$/.test(params.unit_amount_decimal ?? '')) {
        return [400, stripeError('invalid_request_error', 'Invalid unit_amount_decimal')];
      }
      const item = {
        id: id('ii'),
        object: 'invoiceitem',
        customer: params.customer,
        invoice: params.invoice,
        currency: params.currency,
        quantity: Number(params.quantity ?? '1'),
        unit_amount_decimal: params.unit_amount_decimal,
        description: params.description ?? null,
        metadata: metadataOf(params),
      };
      invoiceItems.set(item.id, item);
      return [200, item];
    }
    if (method === 'POST' && path === '/v1/checkout/sessions' && params.mode === 'setup') {
      if (!customers.has(params.customer ?? ''))
        return [400, stripeError('invalid_request_error', 'No such customer')];
      // Stripe requires the currency in setup mode unless the payment method types imply it.
      if (params.currency === undefined && params['payment_method_types[0]'] === undefined)
        return [400, stripeError('invalid_request_error', 'Missing currency')];
      const sessionId = id('cs');
      const session = {
        id: sessionId,
        object: 'checkout.session',
        created,
        mode: 'setup',
        customer: params.customer,
        currency: params.currency ?? null,
        amount_total: null,
        metadata: metadataOf(params),
        payment_intent: null,
        setup_intent: null as string | null,
        payment_status: 'no_payment_required',
        status: 'open',
        success_url: params.success_url,
        cancel_url: params.cancel_url,
        url: `${baseUrl}/pay/${sessionId}`,
      };
      checkoutSessions.set(session.id, session);
      return [200, session];
    }
    const setupIntent = /^\/v1\/setup_intents\/([^/]+)$/.exec(path);
    if (method === 'GET' && setupIntent) {
      const found = setupIntents.get(setupIntent[1]!);
      return found === undefined
        ? [404, stripeError('invalid_request_error', 'No such setupintent')]
        : [200, found];
    }
    if (method === 'POST' && path === '/v1/checkout/sessions') {
      if (!customers.has(params.customer ?? ''))
        return [400, stripeError('invalid_request_error', 'No such customer')];
      const unit = Number(params['line_items[0][price_data][unit_amount]']);
      const quantity = Number(params['line_items[0][quantity]'] ?? '1');
      if (!Number.isSafeInteger(unit) || unit <= 0 || params.mode !== 'payment')
        return [400, stripeError('invalid_request_error', 'Invalid line_items or mode')];
      const sessionId = id('cs');
      const session = {
        id: sessionId,
        object: 'checkout.session',
        created,
        mode: params.mode,
        customer: params.customer,
        currency: params['line_items[0][price_data][currency]'],
        amount_total: unit * quantity,
        metadata: metadataOf(params),
        payment_intent: null as string | null,
        payment_status: 'unpaid',
        status: 'open',
        setup_future_usage: params['payment_intent_data[setup_future_usage]'] ?? null,
        payment_intent_metadata: Object.fromEntries(
          Object.entries(params)
            .map(([k, v]) => [/^payment_intent_data\[metadata\]\[(.+)\]$/.exec(k)?.[1], v])
            .filter(([k]) => k !== undefined),
        ) as Record<string, string>,
        success_url: params.success_url,
        cancel_url: params.cancel_url,
        url: `${baseUrl}/pay/${sessionId}`,
      };
      checkoutSessions.set(session.id, session);
      return [200, session];
    }
    const intent = /^\/v1\/payment_intents\/([^/]+)$/.exec(path);
    if (method === 'GET' && intent) {
      const found = paymentIntents.get(intent[1]!);
      return found === undefined
        ? [404, stripeError('invalid_request_error', 'No such payment_intent')]
        : [200, found];
    }
    if (method === 'POST' && path === '/v1/payment_intents') {
      if (!customers.has(params.customer ?? ''))
        return [400, stripeError('invalid_request_error', 'No such customer')];
      const amount = Number(params.amount);
      if (!Number.isSafeInteger(amount) || amount <= 0)
        return [400, stripeError('invalid_request_error', 'Invalid amount')];
      if (params.off_session !== 'true' || params.confirm !== 'true')
        return [400, stripeError('invalid_request_error', 'Expected off_session and confirm')];
      const pm = params.payment_method ?? '';
      if (declineCards.has(pm)) {
        return [
          402,
          {
            error: {
              type: 'card_error',
              code: 'card_declined',
              decline_code: 'insufficient_funds',
              message: 'Your card has insufficient funds.',
            },
          },
        ];
      }
      return [
        200,
        newIntent(amount, params.currency ?? 'usd', params.customer!, pm, metadataOf(params)),
      ];
    }
    const finalize = /^\/v1\/invoices\/([^/]+)\/finalize$/.exec(path);
    if (method === 'POST' && finalize) {
      const invoice = invoices.get(finalize[1]!);
      if (invoice === undefined)
        return [404, stripeError('invalid_request_error', 'No such invoice')];
      if (invoice.status !== 'draft')
        return [400, stripeError('invalid_request_error', 'Invoice is already finalized')];
      invoice.status = 'open';
      return [200, invoice];
    }
    return [
      404,
      stripeError('invalid_request_error', `Unrecognized request URL (${method}: ${path})`),
    ];
  }

  // A failure in the fake is a failure of the test: left unhandled on purpose (void), not caught.
  const server: Server = createServer((req, res) => void answer(req, res));
  async function answer(req: IncomingMessage, res: ServerResponse) {
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const hosted = /^\/pay\/(cs_[0-9a-f]+)$/.exec(url.pathname);
    if (hosted !== null) {
      hostedCheckout(method, hosted[1]!, res);
      return;
    }
    if (!url.pathname.startsWith('/v1/')) {
      // What a browser on the hosted page asks besides it (favicon.ico): not an API call.
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
      return;
    }
    const params = Object.fromEntries(new URLSearchParams(method === 'GET' ? url.search : raw));
    const key = (req.headers['idempotency-key'] as string | undefined) ?? null;
    if (req.headers.authorization !== `Bearer ${secretKey}`)
      violations.push(`${method} ${url.pathname}: wrong or missing API key`);
    if (method === 'POST' && key === null)
      violations.push(`${method} ${url.pathname}: no Idempotency-Key`);
    if (
      method === 'POST' &&
      !String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')
    ) {
      violations.push(`${method} ${url.pathname}: not form-encoded`);
    }
    const send = (status: number, body: string, replayed: boolean) => {
      requests.push({ method, path: url.pathname, idempotencyKey: key, params, replayed });
      res.writeHead(status, {
        'content-type': 'application/json',
        'request-id': id('req'),
        ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
      });
      res.end(body);
    };
    const failure = failures.find((f) => f.count > 0 && f.pattern.test(url.pathname));
    if (method === 'POST' && failure !== undefined) {
      failure.count--;
      send(500, JSON.stringify(stripeError('api_error', 'Injected failure')), false);
      return;
    }
    const hash = createHash('sha256').update(`${method} ${url.pathname} ${raw}`).digest('hex');
    let answer: { status: number; body: string; replayed: boolean };
    const seen = key !== null && method === 'POST' ? idempotency.get(key) : undefined;
    if (seen !== undefined && seen.hash !== hash) {
      const error = stripeError(
        'idempotency_error',
        'Keys for idempotent requests can only be used with the same parameters they were first used with.',
      );
      answer = { status: 400, body: JSON.stringify(error), replayed: false };
    } else if (seen !== undefined) {
      answer = { status: seen.status, body: seen.body, replayed: true };
    } else {
      const [status, body] = handle(method, url.pathname, params);
      answer = { status, body: JSON.stringify(body), replayed: false };
      // Stripe stores the outcome of a keyed request, API errors included, but not 500s.
      if (key !== null && method === 'POST' && status < 500) {
        idempotency.set(key, { hash, status, body: answer.body });
      }
    }
    const crash = crashes.find((c) => c.count > 0 && c.pattern.test(url.pathname));
    if (method === 'POST' && crash !== undefined) {
      crash.count--;
      requests.push({
        method,
        path: url.pathname,
        idempotencyKey: key,
        params,
        replayed: answer.replayed,
      });
      req.socket.destroy();
      return;
    }
    send(answer.status, answer.body, answer.replayed);
  }
  /** Stripe's hosted Checkout page, reduced to one button: pay (or save the card), go back. */
  function hostedCheckout(method: string, sessionId: string, res: ServerResponse) {
    const session = checkoutSessions.get(sessionId);
    if (session === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('No such session');
      return;
    }
    if (method === 'POST') {
      const done =
        session.mode === 'setup' ? completeSetup(sessionId) : completeCheckout(sessionId);
      const back = String(done.success_url).replace('{CHECKOUT_SESSION_ID}', sessionId);
      res.writeHead(303, { location: back }).end();
      return;
    }
    const label = session.mode === 'setup' ? 'Save card' : 'Pay';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><html lang="en"><head><title>Checkout</title></head><body><main>` +
        `<h1>Fake Stripe Checkout</h1><form method="post" action="/pay/${sessionId}">` +
        `<button type="submit">${label}</button></form></main></body></html>`,
    );
  }

  function completeCheckout(sessionId: string, paymentMethod = 'pm_card_visa') {
    const session = checkoutSessions.get(sessionId);
    if (session === undefined) throw new Error(`fake Stripe: no session ${sessionId}`);
    const pi = newIntent(
      Number(session.amount_total),
      String(session.currency),
      String(session.customer),
      paymentMethod,
      session.payment_intent_metadata as Record<string, string>,
    );
    Object.assign(session, { status: 'complete', payment_status: 'paid', payment_intent: pi.id });
    return { ...session };
  }

  function completeSetup(sessionId: string, paymentMethod = 'pm_card_visa') {
    const session = checkoutSessions.get(sessionId);
    if (session === undefined || session.mode !== 'setup')
      throw new Error(`fake Stripe: no setup session ${sessionId}`);
    const si = {
      id: id('seti'),
      object: 'setup_intent',
      created,
      customer: session.customer,
      payment_method: paymentMethod,
      status: 'succeeded',
      usage: 'off_session',
      metadata: session.metadata,
    };
    setupIntents.set(si.id, si);
    Object.assign(session, { status: 'complete', setup_intent: si.id });
    return { ...session };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  baseUrl = `http://127.0.0.1:${port}`;
  return {
    url: baseUrl,
    secretKey,
    requests,
    customers,
    invoices,
    invoiceItems,
    checkoutSessions,
    paymentIntents,
    declineCards,
    setupIntents,
    completeCheckout,
    completeSetup,
    refund(paymentIntentId, cents) {
      const charge = chargeOf(paymentIntentId);
      if (charge.amount_refunded + cents > charge.amount)
        throw new Error('fake Stripe: refund above the charge');
      charge.amount_refunded += cents;
      charge.refunds.data.unshift({
        id: id('re'),
        object: 'refund',
        amount: cents,
        currency: charge.currency,
        status: 'succeeded',
      });
      return structuredClone(charge);
    },
    dispute(paymentIntentId, cents) {
      const charge = chargeOf(paymentIntentId);
      return {
        id: id('dp'),
        object: 'dispute',
        amount: cents,
        currency: charge.currency,
        charge: charge.id,
        payment_intent: paymentIntentId,
        status: 'needs_response',
      };
    },
    event(type, object, secret, at) {
      const event = {
        id: id('evt'),
        object: 'event',
        api_version: '2024-06-20',
        created: Math.floor(at.getTime() / 1000),
        type,
        data: { object },
      };
      const body = JSON.stringify(event);
      const t = Math.floor(at.getTime() / 1000);
      // Stripe's scheme: v1 = HMAC-SHA256(secret, "<t>.<body>").
      const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
      return { id: event.id, body, signature: `t=${t},v1=${v1}` };
    },
    violations,
    failNext(pattern, count = 1) {
      failures.push({ pattern, count });
    },
    crashAfterNext(pattern, count = 1) {
      crashes.push({ pattern, count });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function stripeError(type: string, message: string) {
  return { error: { type, message } };
}
