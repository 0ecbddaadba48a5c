// Running replicas follow signing-key changes without a restart. `rotate-keys` NOTIFYs
// SIGNING_KEYS_CHANNEL in its transaction; every replica then reloads the live keys, builds a
// new oidc-provider instance over them and swaps it in for the next request (oidc-provider
// reads its JWKS only when it is constructed, and offers no way to replace it), and hands the
// public keys to the access-token verifier. Requests already inside the old instance finish
// there. Everything oidc-provider keeps between requests is in PostgreSQL, so the swap is what
// a rolling restart did, minus the restart.
import type Provider from 'oidc-provider';
import type { DatabaseHandle } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { SIGNING_KEYS_CHANNEL } from './signing-keys.ts';
import type { SigningKeySet } from './signing-keys.ts';

export interface LiveKeysDeps {
  /** Reads the live keys (creating the first ones on a fresh database). */
  load(): Promise<SigningKeySet>;
  listen: DatabaseHandle['listen'];
  log: Logger;
  /** A provider signing with `keys` (createProvider). */
  build(keys: SigningKeySet): Provider;
  /** Called with every new key set, the first one included (the verifier's JWKS). */
  onKeys(keys: SigningKeySet): void;
}

export interface LiveKeys {
  /** The provider to hand the next request to. */
  current(): Provider;
  /** Reloads now and resolves once applied (a change this process just committed). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

// After a failed reload (database unreachable), try again this much later: the replica keeps
// serving with the keys it has, and the other replicas' tokens verify as long as the key that
// signed them was published before (every key is, one rotation ahead).
const RETRY_MS = 5_000;
// setTimeout's ceiling (about 24.8 days); a later retirement is re-armed when this fires.
const MAX_TIMER_MS = 2_147_483_647;
// A retired key is dropped from the JWKS a moment after its retire_after, not before.
const RETIREMENT_SLACK_MS = 1_000;

const fingerprint = (keys: SigningKeySet) =>
  `${keys.activeKid}|${keys.publicJwks.map((k) => k.kid).join(',')}`;

export async function startLiveKeys(deps: LiveKeysDeps): Promise<LiveKeys> {
  const { log } = deps;
  let keys: SigningKeySet | null = null;
  let provider: Provider | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;

  function apply(next: SigningKeySet) {
    if (keys === null || fingerprint(keys) !== fingerprint(next)) {
      const built = deps.build(next);
      const previous = keys;
      provider = built;
      keys = next;
      deps.onKeys(next);
      if (previous !== null) {
        log.info(
          { activeKid: next.activeKid, kids: next.publicJwks.map((k) => k.kid) },
          'OIDC signing keys reloaded',
        );
      }
    }
    arm(next.nextRetirementAt === null ? null : next.nextRetirementAt.getTime() - Date.now());
  }

  function arm(delayMs: number | null) {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (delayMs === null || closed) return;
    timer = setTimeout(
      () => {
        timer = null;
        void background();
      },
      Math.min(Math.max(delayMs + RETIREMENT_SLACK_MS, 0), MAX_TIMER_MS),
    );
    timer.unref();
  }

  /** One reload at a time; a request during a reload runs one more after it. */
  function reload(): Promise<void> {
    if (running !== null) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          apply(await deps.load());
        } while (again && !closed);
      } finally {
        running = null;
      }
    })();
    return running;
  }

  async function background() {
    if (closed) return;
    try {
      await reload();
    } catch (error) {
      log.error({ err: error }, 'could not reload the OIDC signing keys; retrying');
      arm(RETRY_MS - RETIREMENT_SLACK_MS);
    }
  }

  // LISTEN before the first load, so a rotation committed in between is not missed. A null
  // payload (the LISTEN connection came back) also reloads: a rotation may have been missed.
  const unlisten = await deps.listen(SIGNING_KEYS_CHANNEL, () => void background());
  try {
    await reload();
  } catch (error) {
    await unlisten();
    throw error;
  }

  return {
    current() {
      if (provider === null) throw new Error('signing keys are not loaded');
      return provider;
    },
    reload,
    async close() {
      closed = true;
      arm(null);
      await unlisten();
      await running?.catch(() => undefined);
    },
  };
}
