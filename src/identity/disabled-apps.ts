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
  let running: Promise<void> | null = null;
  let again = false;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;
  // NUL cannot occur in an app id, so the pair is unambiguous.
  const userKey = (appId: string, externalId: string) => `${appId}\u0000${externalId}`;

  async function readOnce() {
    const [appIds, appUsers] = await Promise.all([
      listDisabledAppIds(db),
      listDisabledAppUsers(db),
    ]);
    apps = new Set(appIds);
    users = new Set(appUsers.map((u) => userKey(u.app_id, u.external_id)));
  }

  // One read at a time; a change arriving during a read makes the loop read once more, so the
  // last read always starts after the last notification.
  function changed(): Promise<void> {
    again = true;
    if (running !== null) return running;
    running = (async () => {
      try {
        while (!closed && again) {
          again = false;
          await readOnce();
        }
      } catch (error) {
        if (!closed && retry === null) {
          retry = setTimeout(() => {
            retry = null;
            changed().catch(() => undefined);
          }, RETRY_MS);
          retry.unref();
        }
        throw error;
      } finally {
        running = null;
      }
    })();
    running.catch((error: unknown) =>
      log.error({ err: error }, 'could not read app statuses; retrying'),
    );
    return running;
  }

  return {
    appDisabled: (appId) => apps.has(appId),
    userDisabled: (appId, externalId) => users.has(userKey(appId, externalId)),
    changed,
    close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
    },
  };
}
