// The recorder: the in-process way the front door hands usage events to metering without
// waiting for the database on every request. Events are buffered and written in batches;
// memory is bounded (callers wait when the buffer is full); the buffer is flushed on close.
//
// Guarantee (docs/metering-and-billing.md): an event passed to `enqueue` is committed within
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
  /** Batches written at the same time (each on its own connection). */
  writers?: number;
}

export interface Recorder {
  /**
   * Buffers one event. Returns nothing when there was room (the usual case: no promise is
   * made per event), or a promise that resolves once the event is buffered.
   */
  enqueue(event: UsageEvent): Promise<void> | undefined;
  /** Writes now and resolves after commit. */
  recordNow(events: readonly UsageEvent[]): Promise<RecordOutcome[]>;
  /** Writes everything buffered so far. */
  flush(): Promise<void>;
  /** Flushes and stops the timer; later enqueues are written immediately. */
  close(): Promise<void>;
  stats(): { buffered: number; written: number; failedWrites: number };
}

// Defaults sized from bench/metering-ingest.ts: batches of 1,000 reach the throughput
// plateau on PostgreSQL (2,000 and 5,000 cost the same CPU per event); four writers keep the
// server busy while batches wait on commit flushes and round trips, and measured faster than
// two or three on a 2-core host (BENCHMARKS.md, metering); they take 4 of the default 10
// pooled connections only while writing. 100 ms keeps usage queries seconds-fresh; 100,000
// buffered events are ~50 MB at worst and ride out a multi-second database hiccup at full load.
const DEFAULTS = { batchSize: 1_000, flushIntervalMs: 100, maxBuffered: 100_000, writers: 4 };
const MAX_BACKOFF_MS = 5_000;

export function createRecorder(options: RecorderOptions): Recorder {
  const { write, log } = options;
  const batchSize = options.batchSize ?? DEFAULTS.batchSize;
  const flushIntervalMs = options.flushIntervalMs ?? DEFAULTS.flushIntervalMs;
  const maxBuffered = options.maxBuffered ?? DEFAULTS.maxBuffered;
  const writers = options.writers ?? DEFAULTS.writers;

  // Events not yet handed to a writer; `inFlight` counts those being written. Both count
  // against maxBuffered: memory is bounded by what the process holds, written or not.
  let buffer: UsageEvent[] = [];
  let inFlight = 0;
  let activeWriters = 0;
  const roomWaiters: Array<() => void> = [];
  let idleWaiters: Array<() => void> = [];
  let written = 0;
  let failedWrites = 0;
  let backoffMs = 0;
  let backingOff = false;
  let closed = false;

  const timer = setInterval(() => pump(true), flushIntervalMs);
  timer.unref();

  const held = () => buffer.length + inFlight;

  function settle() {
    while (roomWaiters.length > 0 && held() < maxBuffered) roomWaiters.shift()?.();
    if (buffer.length === 0 && activeWriters === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Starts writers while there is work: full batches always, partial ones when `all`. */
  function pump(all: boolean) {
    while (
      !backingOff &&
      activeWriters < writers &&
      buffer.length > 0 &&
      (all || closed || buffer.length >= batchSize)
    ) {
      const batch = buffer.splice(0, batchSize);
      activeWriters++;
      inFlight += batch.length;
      write(batch).then(
        () => {
          activeWriters--;
          inFlight -= batch.length;
          written += batch.length;
          backoffMs = 0;
          pump(buffer.length < batchSize ? false : true);
          settle();
        },
        (error: unknown) => {
          // Keep the batch (writes are idempotent, so retrying after an unknown outcome is
          // safe) and back off before any writer tries again.
          activeWriters--;
          inFlight -= batch.length;
          buffer = batch.concat(buffer);
          failedWrites++;
          backoffMs = Math.min(Math.max(backoffMs * 2, 100), MAX_BACKOFF_MS);
          log.error({ err: error, buffered: held(), retryInMs: backoffMs }, 'usage write failed');
          backingOff = true;
          setTimeout(() => {
            backingOff = false;
            pump(true);
            settle();
          }, backoffMs).unref();
          settle();
        },
      );
    }
  }

  async function enqueueWhenRoom(event: UsageEvent): Promise<void> {
    while (held() >= maxBuffered) {
      await new Promise<void>((resolve) => roomWaiters.push(resolve));
    }
    buffer.push(event);
    pump(false);
  }

  function idle(): Promise<void> {
    if (buffer.length === 0 && activeWriters === 0) return Promise.resolve();
    return new Promise((resolve) => {
      idleWaiters.push(resolve);
      pump(true);
    });
  }

  return {
    enqueue(event) {
      if (held() >= maxBuffered) return enqueueWhenRoom(event);
      buffer.push(event);
      pump(false);
      return undefined;
    },
    recordNow: (events) => write(events),
    flush: idle,
    async close() {
      closed = true;
      clearInterval(timer);
      // Drain everything, however long that takes while writes succeed. Give up only when a
      // whole backoff cycle passes with no batch written: the database is not answering, and
      // a shutdown must not hang on it.
      const stallMs = MAX_BACKOFF_MS + 1_000;
      for (;;) {
        const before = written;
        const outcome = await Promise.race([
          idle().then(() => 'idle' as const),
          new Promise<'stalled'>((resolve) =>
            setTimeout(() => resolve('stalled'), stallMs).unref(),
          ),
        ]);
        if (outcome === 'idle') return;
        if (written === before) {
          log.error({ lost: held() }, 'usage events lost at shutdown: the database did not answer');
          buffer = [];
          return;
        }
      }
    },
    stats: () => ({ buffered: held(), written, failedWrites }),
  };
}
