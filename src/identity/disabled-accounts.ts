// Which accounts are disabled, and which have an address not yet confirmed (issue #18), in
// memory, for the access-token verifier: a JWT is checked without a database round trip, so
// these lists must be local. It is loaded at start and
// kept current by ACCOUNTS_CHANNEL: each notification re-reads that account's status (the
// payload only names it, so a late or reordered notification cannot leave a stale status).
// Memory: one id per disabled or unconfirmed account (rate-limited sign-up bounds the latter).
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { createSerialReads } from '../platform/serial-reads.ts';
import { findAccountStatuses, listRestrictedAccounts } from './queries.ts';

export interface DisabledAccounts {
  has(accountId: string): boolean;
  /** True while the account's e-mail address is not confirmed. */
  unverified(accountId: string): boolean;
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
  const unverified = new Set<string>();
  const pending = new Set<string>();
  let full = false;

  function apply(row: { id: string; status: 'active' | 'disabled'; email_verified: boolean }) {
    if (row.status === 'disabled') disabled.add(row.id);
    if (!row.email_verified) unverified.add(row.id);
  }

  async function readOnce() {
    if (full) {
      full = false;
      pending.clear();
      const rows = await listRestrictedAccounts(db);
      disabled.clear();
      unverified.clear();
      for (const row of rows) apply(row);
      return;
    }
    const ids = [...pending];
    pending.clear();
    const rows = await findAccountStatuses(db, ids);
    for (const id of ids) {
      disabled.delete(id);
      unverified.delete(id);
    }
    for (const row of rows) apply(row);
  }

  // After a failure the whole list is read again: the failed read consumed the pending ids.
  const reads = createSerialReads({
    pending: () => full || pending.size > 0,
    readOnce,
    onFailure: () => {
      full = true;
    },
    retryMs: RETRY_MS,
    log,
    what: 'account statuses',
  });

  return {
    has: (accountId) => disabled.has(accountId),
    unverified: (accountId) => unverified.has(accountId),
    changed(accountId) {
      if (accountId === null) full = true;
      else pending.add(accountId);
      return reads.run();
    },
    close: () => reads.close(),
  };
}
