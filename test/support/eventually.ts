// The one way tests wait for something another part of the system does on its own schedule:
// another process (a replica's LISTEN, a child process, anvil), a background flush, a browser.
// Time itself never needs waiting for: move the test clock (test/support/clock.ts).
//
// There is no timeout of its own by default: a loaded 2-core CI machine can be slow, and the
// test's own timeout (vitest.config.ts) bounds the wait. Pass `timeoutMs` where giving up
// early gives a better message.

export interface EventuallyOptions {
  /** Pause between attempts (default 10 ms: short, since most waits end within a few). */
  intervalMs?: number;
  /** Give up after this long with the last failure (default: never; the test timeout applies). */
  timeoutMs?: number;
  /** What is being waited for, for the error message. */
  what?: string;
  /** A failure that ends the wait at once (the process being waited for has exited). */
  stopOn?: (error: unknown) => boolean;
}

/**
 * Calls `probe` until it returns without throwing and with a value other than `false` or
 * `undefined`; resolves to that value. Assertions (`expect`) inside the probe are retried.
 */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<Exclude<T, false | undefined>> {
  const intervalMs = options.intervalMs ?? 10;
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== false && value !== undefined) return value as Exclude<T, false | undefined>;
      last = undefined;
    } catch (error) {
      if (options.stopOn?.(error) === true) throw error;
      last = error;
    }
    if (Date.now() > deadline) {
      const reason =
        last === undefined ? '' : `: ${last instanceof Error ? last.message : String(last)}`;
      throw new Error(`timed out waiting for ${options.what ?? 'a condition'}${reason}`, {
        cause: last,
      });
    }
    await pause(intervalMs);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
