// A real webhook receiver on loopback: records every request (headers and raw body) and answers
// with the status the test scripts, or holds the request open until the test lets it go.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  headers: Record<string, string>;
  body: string;
  /** The event id (`webhook-id`). */
  id: string;
  json: { id: string; type: string; timestamp: string; account_id: string | null; data: unknown };
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Statuses answered to the next requests, in order; then `otherwise`. */
  script: number[];
  otherwise: number;
  /** While set, requests are held open (not answered) until `release()`. */
  hold: boolean;
  /** How many requests are being held. */
  held(): number;
  release(): void;
  /** Verifies every received request with the standardwebhooks library and `secret`. */
  verifyAll(secret: string): void;
  close(): Promise<void>;
}

export async function startReceiver(path = '/hook'): Promise<Receiver> {
  const waiting: Array<() => void> = [];
  const receiver: Receiver = {
    url: '',
    received: [],
    script: [],
    otherwise: 200,
    hold: false,
    held: () => waiting.length,
    release() {
      for (const answer of waiting.splice(0)) answer();
    },
    verifyAll(secret) {
      const webhook = new Webhook(secret);
      for (const r of receiver.received) webhook.verify(r.body, r.headers);
    },
    close: () =>
      new Promise((resolve) => {
        receiver.release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [
          k,
          Array.isArray(v) ? v.join(', ') : (v ?? ''),
        ]),
      );
      const answer = () => {
        const status = receiver.script.shift() ?? receiver.otherwise;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
      };
      if (req.url !== path) {
        res.writeHead(404).end();
        return;
      }
      receiver.received.push({
        headers,
        body,
        id: headers['webhook-id'] ?? '',
        json: JSON.parse(body) as Received['json'],
      });
      if (receiver.hold) waiting.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  return receiver;
}
