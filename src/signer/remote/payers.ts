// Who pays for a payment. Usually the caller: the credential go-livepeer (or an SDK) sends to
// the signer. But a gateway shared by many customers sends its own key on every payment; for
// the credentials listed in SIGNER_SHARED_CREDENTIALS the payer is the account that owns the
// stream the request names in the Tollhouse-Stream header — a stream the front door issued
// through /v1/streams, by its id (`str_…`) or its stream key. Anything else from a shared
// credential is refused: the operator's own account never pays silently for a stream nobody
// owns.
//
// Not the ManifestID: on go-livepeer's live-AI path it is the orchestrator's own random id for
// the job (server/ai_http.go StartLiveVideoToVideo: `mid = requestID`, a RandomManifestID,
// returned as `manifest_id` and used by the gateway for every later payment; the first payment
// has none), and the orchestrator credits each payment to the balance that id names, so a
// caller cannot put a stream there without breaking the orchestrator's accounting. go-livepeer
// itself sends the signer nothing that names a stream (its -remoteSignerHeaders are static):
// a go-livepeer gateway cannot share a credential across customers (docs/signer.md).
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

/** The request header a shared credential names the paying stream in. */
export const STREAM_HEADER = 'tollhouse-stream';

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
  /**
   * The principal a payment by `caller` is metered to and spend-checked for; `stream` is the
   * Tollhouse-Stream header (a stream id or key), '' when absent.
   */
  payerOf(caller: Principal, stream: string): Promise<Payer>;
}

// A gateway pays every stream every few seconds (-livePaymentInterval, 5 s): one lookup per
// stream per 10 s instead of one per payment. A revoked stream keeps being paid for at most
// this long. Unknown ids are remembered as long, so a bogus stream costs no query per try.
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

  const lookup = (stream: string): Promise<StreamOwner | null> => {
    const cached = owners.get(stream);
    if (cached !== undefined && cached.until > now()) return cached.owner;
    const streams = deps.streams;
    const owner =
      streams === null
        ? Promise.resolve(null)
        : stream.startsWith('stk_')
          ? streams.byKey(stream)
          : streams.byId(stream);
    if (owners.size >= OWNER_CACHE) owners.clear();
    owners.set(stream, { owner, until: now() + OWNER_TTL_MS });
    // A failed lookup is not remembered: the next payment asks again.
    owner.catch(() => owners.delete(stream));
    return owner;
  };

  const isShared = (caller: Principal) =>
    (caller.keyId !== null && shared.has(caller.keyId)) ||
    (caller.clientId !== null && shared.has(caller.clientId));

  return {
    isShared,
    async payerOf(caller, stream) {
      if (!isShared(caller)) return { principal: caller, streamId: null };
      if (stream === '') {
        throw new Forbidden(
          'A shared gateway credential pays only for streams: name a stream issued by /v1/streams in the Tollhouse-Stream header (go-livepeer gateways send none: give each its own credential)',
        );
      }
      const owner = await lookup(stream);
      if (owner === null) {
        throw new Forbidden('Tollhouse-Stream is not an active stream issued by /v1/streams');
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
