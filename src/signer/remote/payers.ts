// Who pays for a payment. Usually the caller: the credential go-livepeer (or an SDK) sends to
// the signer. But a go-livepeer gateway shared by many customers sends its own key
// (-remoteSignerHeaders) on every payment; for the credentials listed in
// SIGNER_SHARED_CREDENTIALS the payer is the account that owns the stream named by the
// request's ManifestID — a stream the front door issued through /v1/streams, named by its id
// (`str_…`, the manifestID/stream_id tollhouse's stream-auth and live-AI-auth webhooks hand
// go-livepeer) or by its stream key. Anything else from a shared credential is refused: the
// operator's own account never pays silently for a stream nobody owns.
import type { Principal } from '../../platform/auth.ts';
import { Forbidden } from '../../platform/errors.ts';

/** The part of a front-door stream the signer needs (src/gateway's `Stream`). */
export interface StreamOwner {
  id: string;
  accountId: string;
  appId: string | null;
  keyId: string | null;
  clientId: string | null;
  endUserId: string | null;
}

/** Provided by the gateway capability (composed in src/app.ts). */
export interface StreamDirectory {
  byId(id: string): Promise<StreamOwner | null>;
  byKey(streamKey: string): Promise<StreamOwner | null>;
}

export interface Payer {
  principal: Principal;
  /** The stream the payment was attributed through, when the caller is shared. */
  streamId: string | null;
}

export interface Payers {
  /** Whether `caller` is a shared gateway credential (its payments belong to stream owners). */
  isShared(caller: Principal): boolean;
  /** The principal a payment by `caller` for `manifestId` is metered to and spend-checked for. */
  payerOf(caller: Principal, manifestId: string): Promise<Payer>;
}

// A gateway pays every stream every few seconds (-livePaymentInterval, 5 s): one lookup per
// stream per 10 s instead of one per payment. A revoked stream keeps being paid for at most
// this long. Unknown ids are remembered as long, so a bogus ManifestID costs no query per try.
const OWNER_TTL_MS = 10_000;
// Streams live at once on a replica, with room to spare; then the map starts over.
const OWNER_CACHE = 50_000;

export function createPayers(deps: {
  streams: StreamDirectory | null;
  sharedCredentials: readonly string[];
  now?: () => number;
}): Payers {
  const shared = new Set(deps.sharedCredentials);
  const now = deps.now ?? Date.now;
  const owners = new Map<string, { owner: Promise<StreamOwner | null>; until: number }>();

  const lookup = (manifestId: string): Promise<StreamOwner | null> => {
    const cached = owners.get(manifestId);
    if (cached !== undefined && cached.until > now()) return cached.owner;
    const streams = deps.streams;
    const owner =
      streams === null
        ? Promise.resolve(null)
        : manifestId.startsWith('stk_')
          ? streams.byKey(manifestId)
          : streams.byId(manifestId);
    if (owners.size >= OWNER_CACHE) owners.clear();
    owners.set(manifestId, { owner, until: now() + OWNER_TTL_MS });
    // A failed lookup is not remembered: the next payment asks again.
    owner.catch(() => owners.delete(manifestId));
    return owner;
  };

  const isShared = (caller: Principal) =>
    (caller.keyId !== null && shared.has(caller.keyId)) ||
    (caller.clientId !== null && shared.has(caller.clientId));

  return {
    isShared,
    async payerOf(caller, manifestId) {
      if (!isShared(caller)) return { principal: caller, streamId: null };
      if (manifestId === '') {
        throw new Forbidden(
          'A shared gateway credential pays only for streams: send the ManifestID of a stream issued by /v1/streams',
        );
      }
      const owner = await lookup(manifestId);
      if (owner === null) {
        throw new Forbidden('ManifestID is not an active stream issued by /v1/streams');
      }
      return {
        principal: {
          via: caller.via,
          accountId: owner.accountId,
          appId: owner.appId,
          keyId: owner.keyId,
          clientId: owner.clientId,
          endUserId: owner.endUserId,
          scopes: caller.scopes,
          allowedOrigins: null,
          allowedResources: null,
        },
        streamId: owner.id,
      };
    },
  };
}
