// The recorder: the in-process way the front door hands usage events to metering without
// waiting for the database on every request. Events are buffered and written in batches;
// memory is bounded (callers wait when the buffer is full); the buffer is flushed on close.
//
// Guarantee (README, Metering): an event passed to `enqueue` is committed within
// `flushIntervalMs` while the database is reachable, and on graceful shutdown. If the process
// is killed (SIGKILL, OOM) events still in the buffer — at most `maxBuffered`, normally one
// interval's worth — are lost. Paths that must not lose an event (the signer: a signed
// payment is always metered) call `recordNow`, which resolves only after commit.
import type { Logger } from '../platform/log.ts';
import type { RecordOutcome, UsageEvent } from './model.ts';

export interface RecorderOptions {
  write: (events: readonly UsageEvent[]) => Promise<RecordOutcome[]>;
  log: Logger;
  /** Events per INSERT. */
  batchSize?: number;
  /** Longest time an event waits in the buffer while the database is up. */
  flushIntervalMs?: number;
  /** Buffer bound; `enqueue` waits for room beyond it (backpressure). */
  maxBuffered?: number;
}

export interface Recorder {
  /** Buffers one event; resolves at once, or once there is room. */
  enqueue(event: UsageEvent): Promise<void>;
  /** Writes now and resolves after commit. */
  recordNow(events: readonly UsageEvent[]): Promise<RecordOutcome[]>;
  /** Writes everything buffered so far. */
  flush(): Promise<void>;
  /** Flushes and stops the timer; later enqueues are written immediately. */
  close(): Promise<void>;
  stats(): { buffered: number; written: number; failedWrites: number };
}

// Defaults sized from bench/metering-ingest.ts: batches of 1,000 reach the throughput
// plateau on PostgreSQL; 100 ms keeps usage queries seconds-fresh; 100,000 buffered events
// are ~50 MB at worst and ride out a multi-second database hiccup at full load.
const DEFAULTS = { batchSize: 1_000, flushIntervalMs: 100, maxBuffered: 100_000 };
const MAX_BACKOFF_MS = 5_000;

export function createRecorder(options: RecorderOptions): Recorder {
  const { write, log } = options;
  const batchSize = options.batchSize ?? DEFAULTS.batchSize;
  const flushIntervalMs = options.flushIntervalMs ?? DEFAULTS.flushIntervalMs;
  const maxBuffered = options.maxBuffered ?? DEFAULTS.maxBuffered;

  let buffer: UsageEvent[] = [];
  const waiting: Array<() => void> = [];
  let writing: Promise<void> | null = null;
  let written = 0;
  let failedWrites = 0;
  let backoffMs = 0;
  let closed = false;

  const timer = setInterval(() => void drain(), flushIntervalMs);
  timer.unref();

  function wakeWaiters() {
    while (waiting.length > 0 && buffer.length < maxBuffered) waiting.shift()?.();
  }

  /** Takes batches off the front until the buffer is empty, or a write fails. */
  async function writeAll(): Promise<void> {
    while (buffer.length > 0) {
      const batch = buffer.slice(0, batchSize);
      try {
        await write(batch);
      } catch (error) {
        // Keep the batch (writes are idempotent, so a retry after an unknown outcome is
        // safe) and back off; the next tick or flush tries again.
        failedWrites++;
        backoffMs = Math.min(Math.max(backoffMs * 2, 100), MAX_BACKOFF_MS);
        log.error(
          { err: error, buffered: buffer.length, retryInMs: backoffMs },
          'usage write failed',
        );
        await new Promise((r) => setTimeout(r, backoffMs).unref());
        if (closed) throw error;
        return;
      }
      buffer = buffer.slice(batch.length);
      written += batch.length;
      backoffMs = 0;
      wakeWaiters();
    }
  }

  /** One writer at a time. `writing` is cleared asynchronously, after it was assigned. */
  function drain(): Promise<void> {
    writing ??= writeAll().finally(() => {
      writing = null;
    });
    return writing;
  }

  return {
    async enqueue(event) {
      while (buffer.length >= maxBuffered) {
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      buffer.push(event);
      if (closed || buffer.length >= batchSize) void drain().catch(() => undefined);
    },
    recordNow: (events) => write(events),
    async flush() {
      while (buffer.length > 0 || writing !== null) await drain();
    },
    async close() {
      closed = true;
      clearInterval(timer);
      // On close a failing database must not hang shutdown forever: one pass, then report.
      while (buffer.length > 0 || writing !== null) {
        try {
          await drain();
        } catch (error) {
          log.error({ err: error, lost: buffer.length }, 'usage events lost at shutdown');
          buffer = [];
        }
      }
    },
    stats: () => ({ buffered: buffer.length, written, failedWrites }),
  };
}
