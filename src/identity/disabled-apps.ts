// Which apps and app users are disabled, in memory, for the access-token verifier: a token an
// app obtained (client credentials, or token exchange for one of its users) is checked without
// a database round trip, so the refusal list must be local, like disabled-accounts.ts. Every
// change to an app or an app user's status NOTIFYs APPS_CHANNEL in its transaction; each
// replica then re-reads both lists whole. Status changes are operator or app-backend actions
// (rare), and the lists hold only what is disabled, so a whole re-read is cheap and cannot be
// left stale by a reordered notification.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { createSerialReads } from '../platform/serial-reads.ts';
import { listDisabledAppIds, listDisabledAppUsers } from './queries.ts';

export interface DisabledApps {
  appDisabled(appId: string): boolean;
  /** `externalId` is the app's own id for the user (the token's `end_user_id`). */
  userDisabled(appId: string, externalId: string): boolean;
  /** Re-reads both lists; resolves once applied. */
  changed(): Promise<void>;
  close(): void;
}

// After a failed read (database unreachable) the lists are read again this much later.
const RETRY_MS = 5_000;

export function createDisabledApps({
  db,
  log,
}: {
  db: Kysely<Database>;
  log: Logger;
}): DisabledApps {
  let apps = new Set<string>();
  let users = new Set<string>();
  // Both lists are always re-read whole, so one flag says a read is owed.
  let again = false;
  // NUL cannot occur in an app id, so the pair is unambiguous.
  const userKey = (appId: string, externalId: string) => `${appId}\u0000${externalId}`;

  async function readOnce() {
    again = false;
    const [appIds, appUsers] = await Promise.all([
      listDisabledAppIds(db),
      listDisabledAppUsers(db),
    ]);
    apps = new Set(appIds);
    users = new Set(appUsers.map((u) => userKey(u.app_id, u.external_id)));
  }

  const reads = createSerialReads({
    pending: () => again,
    readOnce,
    onFailure: () => {
      again = true;
    },
    retryMs: RETRY_MS,
    log,
    what: 'app statuses',
  });

  return {
    appDisabled: (appId) => apps.has(appId),
    userDisabled: (appId, externalId) => users.has(userKey(appId, externalId)),
    changed() {
      again = true;
      return reads.run();
    },
    close: () => reads.close(),
  };
}
