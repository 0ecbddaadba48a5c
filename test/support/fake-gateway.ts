// A fake go-livepeer gateway (broadcaster mode) for front door tests: a real HTTP server that
// answers the AI paths with bodies shaped like go-livepeer's (LIVEPEER.md §6), can stream,
// stall, fail with a status and cut connections mid-response, and records what it received
// (headers, body size and SHA-256 — never the body itself, so 50 MB uploads cost nothing).
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Grows while the body arrives (tests use it to prove the front door streams). */
  bodyBytes: number;
  bodySha256: string;
  /** The connection closed before the response was complete (the front door aborted). */
  closedEarly: boolean;
}

export type Behaviour =
  /** go-livepeer's normal answer for the path (the default). */
  | { kind: 'normal' }
  | {
      kind: 'status';
      status: number;
      /** JSON-encoded unless `raw` (e.g. an SDP answer). */
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
    }
  /** Accept the request, never answer. */
  | { kind: 'stall' }
  /** Send headers and `chunks` chunks of `chunkBytes`, `intervalMs` apart, then end. */
  | { kind: 'stream'; chunks: number; chunkBytes: number; intervalMs: number }
  /** Send headers and a first body chunk, then destroy the connection. */
  | { kind: 'cut' }
  /** Destroy the connection without answering. */
  | { kind: 'reset' }
  /** Stop reading the request body after `afterBytes` until `release()`, then answer normally. */
  | { kind: 'hold'; afterBytes: number };

export interface FakeGateway {
  url: string;
  received: Received[];
  /** How the next requests to `path` are answered (until `reset`). */
  set(path: string, behaviour: Behaviour): void;
  reset(): void;
  /** Resumes reading the bodies held by a `hold` behaviour. */
  release(): void;
  /** Whether a `hold` behaviour is holding a request body now. */
  holding(): boolean;
  /** Resolves once `count` requests have been fully handled or cut. */
  settled(count: number): Promise<void>;
  close(): Promise<void>;
}

export const FAKE_USAGE = { prompt_tokens: 9, completion_tokens: 21, total_tokens: 30 };
export const FAKE_AUDIO_END_SECONDS = 12.345;

/** The SSE bytes the fake sends for `/llm` with `stream: true` (deterministic). */
export function fakeLlmSse(chunks = 5): string {
  let out = '';
  for (let i = 0; i < chunks; i++) {
    const delta = { id: 'chatcmpl-fake', choices: [{ index: 0, delta: { content: `t${i} ` } }] };
    out += `data: ${JSON.stringify(delta)}\n\n`;
  }
  const last = {
    id: 'chatcmpl-fake',
    choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
    usage: FAKE_USAGE,
  };
  return `${out}data: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`;
}

function normalBody(path: string, json: Record<string, unknown> | null): unknown {
  switch (path) {
    case '/text-to-image':
    case '/image-to-image':
    case '/upscale':
      return { images: [{ url: 'https://gateway.example/stream/0.png', seed: 42, nsfw: false }] };
    case '/image-to-video':
      return { images: [{ url: 'https://gateway.example/stream/0.mp4', seed: 42, nsfw: false }] };
    case '/audio-to-text':
      return {
        text: 'hello world',
        chunks: [
          { text: 'hello', timestamp: [0, 4.2] },
          { text: 'world', timestamp: [4.2, FAKE_AUDIO_END_SECONDS] },
        ],
      };
    case '/llm':
      return {
        id: 'chatcmpl-fake',
        model: json?.model ?? 'meta-llama/Meta-Llama-3.1-8B-Instruct',
        choices: [
          { index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' },
        ],
        usage: FAKE_USAGE,
      };
    case '/segment-anything-2':
      return { masks: '[[0]]', scores: '[0.9]', logits: '[[0.1]]' };
    case '/image-to-text':
      return { text: 'a cat on a mat' };
    case '/text-to-speech':
      return { audio: { url: 'https://gateway.example/stream/0.wav' } };
    default:
      return { ok: true };
  }
}

export async function startFakeGateway(): Promise<FakeGateway> {
  const behaviours = new Map<string, Behaviour>();
  const received: Received[] = [];
  const held = new Set<http.IncomingMessage>();
  const sockets = new Set<Socket>();
  let settledCount = 0;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const settle = () => {
    settledCount++;
    for (const waiter of [...waiters]) {
      if (settledCount >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };

  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    // Only small bodies are kept (to read `stream` from an /llm request).
    const small: Buffer[] = [];
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const record: Received = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      bodyBytes: 0,
      bodySha256: '',
      closedEarly: false,
    };
    received.push(record);
    let done = false;
    res.on('close', () => {
      if (!res.writableFinished) record.closedEarly = true;
      if (!done) {
        done = true;
        settle();
      }
    });
    const behaviour = behaviours.get(path);
    let wasHeld = false;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      record.bodyBytes = bytes;
      if (behaviour?.kind === 'hold' && !wasHeld && bytes >= behaviour.afterBytes) {
        wasHeld = true;
        held.add(req);
        req.pause();
      }
      if (bytes <= 64 * 1024) small.push(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      record.bodyBytes = bytes;
      record.bodySha256 = hash.digest('hex');
      let json: Record<string, unknown> | null;
      try {
        json = JSON.parse(Buffer.concat(small).toString('utf8')) as Record<string, unknown>;
      } catch {
        json = null;
      }
      answer(path, json, res);
    });
  });

  function answer(path: string, json: Record<string, unknown> | null, res: http.ServerResponse) {
    const behaviour = behaviours.get(path) ?? { kind: 'normal' };
    switch (behaviour.kind) {
      case 'stall':
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'cut':
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(1024, 1), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      case 'status':
        res.writeHead(behaviour.status, {
          'content-type': 'application/json',
          ...behaviour.headers,
        });
        res.end(
          behaviour.raw ?? JSON.stringify(behaviour.body ?? { error: { message: 'fake failure' } }),
        );
        return;
      case 'stream': {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let sent = 0;
        const tick = () => {
          if (res.destroyed) return;
          if (sent === behaviour.chunks) {
            res.end();
            return;
          }
          sent++;
          res.write(Buffer.alloc(behaviour.chunkBytes, sent % 256));
          setTimeout(tick, behaviour.intervalMs);
        };
        tick();
        return;
      }
      case 'hold':
      case 'normal':
        if (path === '/llm' && json?.stream === true) {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          // Written in small pieces, split mid-line, as a real stream would arrive.
          const bytes = Buffer.from(fakeLlmSse());
          let offset = 0;
          const step = () => {
            if (res.destroyed) return;
            if (offset >= bytes.length) {
              res.end();
              return;
            }
            res.write(bytes.subarray(offset, offset + 37));
            offset += 37;
            setImmediate(step);
          };
          step();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(normalBody(path, json)));
    }
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    set(path, behaviour) {
      behaviours.set(path, behaviour);
    },
    reset() {
      behaviours.clear();
    },
    release() {
      for (const req of held) req.resume();
      held.clear();
    },
    holding: () => held.size > 0,
    settled(count) {
      if (settledCount >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
