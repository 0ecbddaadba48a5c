// One read at a time, repeated while there is work, retried after a failure: the loop behind
// the in-memory refusal lists (disabled accounts, disabled apps) that NOTIFY keeps current.
// Reads never overlap, so a read started after a notification sees at least the change it
// announced; a change arriving during a read joins the running loop (no await separates the
// loop's last check from `running = null`), so the last read starts after the last change.
import type { Logger } from './log.ts';

export interface SerialReads {
  /** Runs the loop (or joins the running one); resolves once no work is left. */
  run(): Promise<void>;
  close(): void;
}

export function createSerialReads({
  pending,
  readOnce,
  onFailure,
  retryMs,
  log,
  what,
}: {
  /** Whether a read is still owed (the caller records changes before calling run). */
  pending(): boolean;
  readOnce(): Promise<void>;
  /** Marks the work the retry must redo (the failed read consumed its marks). */
  onFailure(): void;
  /** After a failed read (database unreachable) the loop runs again this much later. */
  retryMs: number;
  log: Logger;
  /** For the log line: `could not read ${what}; retrying`. */
  what: string;
}): SerialReads {
  let running: Promise<void> | null = null;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;

  function run(): Promise<void> {
    if (running !== null) return running;
    running = (async () => {
      try {
        while (!closed && pending()) await readOnce();
      } catch (error) {
        onFailure();
        if (!closed && retry === null) {
          retry = setTimeout(() => {
            retry = null;
            run().catch(() => undefined);
          }, retryMs);
          retry.unref();
        }
        throw error;
      } finally {
        running = null;
      }
    })();
    running.catch((error: unknown) =>
      log.error({ err: error }, `could not read ${what}; retrying`),
    );
    return running;
  }

  return {
    run,
    close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
    },
  };
}
