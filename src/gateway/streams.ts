// Streams: a stream key an account issues through /v1/streams and hands to a broadcaster
// (RTMP ingest URL, or the `stream_key` of a live AI start). go-livepeer's stream and live AI
// auth webhooks map the key back to the principal that created the stream.
import type { Kysely } from 'kysely';
import type { Principal } from '../platform/auth.ts';
import { hasScope } from '../platform/auth.ts';
import type { Database } from '../database.ts';
import { NotFound } from '../platform/errors.ts';
import { isId, newId, randomBase62 } from '../platform/ids.ts';
import type { Secrets } from '../platform/secrets.ts';
import {
  findActiveStreamById,
  findActiveStreamByKeyHash,
  insertStream,
  listStreamsByAccount,
  revokeStreamById,
} from './queries.ts';
import type { Stream } from './queries.ts';

export const STREAM_KEY_HASH_PURPOSE = 'stream-keys';
// `stk_` + 24 bytes (192 bits) in base62: unguessable, and URL/RTMP-path safe.
const STREAM_KEY = /^stk_[0-9A-Za-z]{33}$/;

export interface StreamService {
  create(principal: Principal, name: string): Promise<{ stream: Stream; streamKey: string }>;
  list(principal: Principal): Promise<Stream[]>;
  revoke(principal: Principal, id: string): Promise<Stream>;
  /** The active stream a key belongs to, or null (unknown, revoked or malformed). */
  byKey(streamKey: string): Promise<Stream | null>;
  /** The active stream with this id (`str_…`, the manifest id the webhooks hand out), or null. */
  byId(id: string): Promise<Stream | null>;
}

export function createStreamService(deps: {
  db: Kysely<Database>;
  secrets: Secrets;
}): StreamService {
  const { db, secrets } = deps;
  const hash = (key: string) => secrets.hmac(STREAM_KEY_HASH_PURPOSE, key);
  return {
    async create(principal, name) {
      const streamKey = `stk_${randomBase62(24)}`;
      const stream = await insertStream(db, {
        id: newId('str'),
        account_id: principal.accountId,
        app_id: principal.appId,
        key_id: principal.keyId,
        client_id: principal.clientId,
        end_user_id: principal.endUserId,
        name,
        stream_key_hash: hash(streamKey),
      });
      return { stream, streamKey };
    },
    list: (principal) => listStreamsByAccount(db, principal.accountId),
    async revoke(principal, id) {
      // An operator revokes any account's stream; everyone else only their account's.
      const owner = hasScope(principal, 'admin')
        ? ((await findActiveStreamById(db, id))?.accountId ?? principal.accountId)
        : principal.accountId;
      const stream = await revokeStreamById(db, owner, id);
      if (stream === null) throw new NotFound('No active stream with this id in your account');
      return stream;
    },
    async byKey(streamKey) {
      if (!STREAM_KEY.test(streamKey)) return null;
      return findActiveStreamByKeyHash(db, hash(streamKey));
    },
    async byId(id) {
      if (!isId('str', id)) return null;
      return findActiveStreamById(db, id);
    },
  };
}
