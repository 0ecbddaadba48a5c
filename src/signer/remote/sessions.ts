// Where a payment's session is looked up and sealed: the signer_sessions table, behind a cache
// of the states this replica handed out last, and the MAC that seals a state (see
// ./service.ts's comment for why a MAC and not a signature).
import { hash, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../database.ts';
import type { Secrets } from '../../platform/secrets.ts';
import type { SessionStore } from './payment.ts';
import { findSessionByStateId } from './queries.ts';
import type { SessionRow } from './queries.ts';
import type { PaymentState } from './state.ts';

// Live streams a replica serves at once, with room to spare (~100 bytes each).
const SESSION_CACHE = 10_000;
const STATE_MAC_PURPOSE = 'signer-state';

export interface Sessions {
  /** The store restoreSession reads, for the signer address `sender` (20 bytes). */
  store(sender: Uint8Array): SessionStore;
  /** The state's `Sig`: HMAC over the signer address and the state bytes. */
  seal(sender: Uint8Array, state: Uint8Array): Uint8Array;
  /** Remembers a state handed out (and forgets the one it replaces). */
  remember(
    replaced: string | null,
    digest: string,
    entry: { row: SessionRow; state: PaymentState },
  ): void;
}

export function createSessions(deps: {
  db: Kysely<Database>;
  secrets: Pick<Secrets, 'hmacBytes'>;
}): Sessions {
  // The states this replica handed out last, by their digest sha256(State ‖ Sig), with the
  // session row as written then: the next payment of a stream (every few seconds, usually to
  // the same replica) presents exactly those bytes and needs no read, no parse and no
  // signature recovery. Bounded: past SESSION_CACHE streams the map starts over.
  const handedOut = new Map<string, { row: SessionRow; state: PaymentState }>();
  const seal = (sender: Uint8Array, state: Uint8Array): Uint8Array =>
    deps.secrets.hmacBytes(STATE_MAC_PURPOSE, [sender, state]);
  return {
    seal,
    store: (sender) => ({
      handedOut: (digest) => handedOut.get(digest),
      findSession: (stateId) => findSessionByStateId(deps.db, stateId),
      sealed: (state, sig) => sig.length === 32 && timingSafeEqual(seal(sender, state), sig),
      digest: stateDigest,
    }),
    remember(replaced, digest, entry) {
      if (replaced !== null) handedOut.delete(replaced);
      if (handedOut.size >= SESSION_CACHE) handedOut.clear();
      handedOut.set(digest, entry);
    },
  };
}

/** sha256(State ‖ Sig), hex: the fingerprint of a state handed out (signer_sessions). */
export function stateDigest(state: Uint8Array, sig: Uint8Array): string {
  // One-shot hash of the two parts joined: cheaper than a Hash object for a few hundred bytes.
  const joined = new Uint8Array(state.length + sig.length);
  joined.set(state, 0);
  joined.set(sig, state.length);
  return hash('sha256', joined, 'hex');
}
