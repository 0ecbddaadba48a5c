import { afterEach, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/platform/log.ts';
import { createSerialReads } from '../../src/platform/serial-reads.ts';

function memoryLog() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger({ level: 'error', destination }), lines };
}

describe('serial reads (the loop behind the in-memory refusal lists)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('never overlaps reads, and reads once more for a change that arrives during a read', async () => {
    let owed = 0;
    let active = 0;
    let maxActive = 0;
    let reads = 0;
    let release: () => void = () => undefined;
    const { log } = memoryLog();
    const loop = createSerialReads({
      pending: () => owed > 0,
      async readOnce() {
        owed = 0;
        active += 1;
        maxActive = Math.max(maxActive, active);
        reads += 1;
        await new Promise<void>((resolve) => (release = resolve));
        active -= 1;
      },
      onFailure: () => undefined,
      retryMs: 1_000,
      log,
      what: 'test statuses',
    });
    owed = 1;
    const first = loop.run();
    await Promise.resolve();
    owed = 1; // a change while the first read is in flight
    const second = loop.run();
    expect(second).toBe(first);
    release();
    await vi.waitFor(() => expect(reads).toBe(2));
    release();
    await first;
    expect(maxActive).toBe(1);
    loop.close();
  });

  it('retries a failed read after retryMs, redoing the work the failure consumed', async () => {
    vi.useFakeTimers();
    let owed = false;
    let calls = 0;
    const { log, lines } = memoryLog();
    const loop = createSerialReads({
      pending: () => owed,
      readOnce() {
        owed = false;
        calls += 1;
        return calls === 1 ? Promise.reject(new Error('database unreachable')) : Promise.resolve();
      },
      onFailure: () => {
        owed = true;
      },
      retryMs: 5_000,
      log,
      what: 'test statuses',
    });
    owed = true;
    await expect(loop.run()).rejects.toThrow('database unreachable');
    expect(owed).toBe(true);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    expect(owed).toBe(false);
    await vi.waitFor(() =>
      expect(lines.join('')).toContain('could not read test statuses; retrying'),
    );
    loop.close();
  });

  it('stops retrying once closed', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const { log } = memoryLog();
    const loop = createSerialReads({
      pending: () => true,
      readOnce() {
        calls += 1;
        return Promise.reject(new Error('down'));
      },
      onFailure: () => undefined,
      retryMs: 100,
      log,
      what: 'test statuses',
    });
    await expect(loop.run()).rejects.toThrow('down');
    loop.close();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(1);
  });
});
