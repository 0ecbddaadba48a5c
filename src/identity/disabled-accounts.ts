// Which accounts are disabled, in memory, for the access-token verifier: a JWT is checked
// without a database round trip, so the refusal list must be local. It is loaded at start and
// kept current by ACCOUNTS_CHANNEL: each notification re-reads that account's status (the
// payload only names it, so a late or reordered notification cannot leave a stale status).
// Memory: one id per disabled account.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { findAccountStatuses, listDisabledAccountIds } from './queries.ts';

export interface DisabledAccounts {
  has(accountId: string): boolean;
  /** Re-reads `accountId`'s status, or every status (null); resolves once applied. */
  changed(accountId: string | null): Promise<void>;
  close(): void;
}

// After a failed read (database unreachable) the whole list is read again this much later.
const RETRY_MS = 5_000;

export function createDisabledAccounts({
  db,
  log,
}: {
  db: Kysely<Database>;
  log: Logger;
}): DisabledAccounts {
  const disabled = new Set<string>();
  const pending = new Set<string>();
  let full = false;
  let running: Promise<void> | null = null;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;

  async function readOnce() {
    if (full) {
      full = false;
      pending.clear();
      const ids = await listDisabledAccountIds(db);
      disabled.clear();
      for (const id of ids) disabled.add(id);
      return;
    }
    const ids = [...pending];
    pending.clear();
    const rows = await findAccountStatuses(db, ids);
    for (const id of ids) disabled.delete(id);
    for (const row of rows) if (row.status === 'disabled') disabled.add(row.id);
  }

  // Reads run one at a time, in the order the changes arrived; a read started after a
  // notification sees at least the change it announced. A change arriving during a read joins
  // the running loop (no await separates the loop's last check from `running = null`).
  function changed(accountId: string | null): Promise<void> {
    if (accountId === null) full = true;
    else pending.add(accountId);
    if (running !== null) return running;
    running = (async () => {
      try {
        while (!closed && (full || pending.size > 0)) await readOnce();
      } catch (error) {
        full = true;
        if (!closed && retry === null) {
          retry = setTimeout(() => {
            retry = null;
            changed(null).catch(() => undefined);
          }, RETRY_MS);
          retry.unref();
        }
        throw error;
      } finally {
        running = null;
      }
    })();
    running.catch((error: unknown) =>
      log.error({ err: error }, 'could not read account statuses; retrying'),
    );
    return running;
  }

  return {
    has: (accountId) => disabled.has(accountId),
    changed,
    close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
    },
  };
}
