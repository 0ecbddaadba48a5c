// oidc-provider's storage adapter over Kysely: one `oidc_payloads` table (jsonb payloads,
// indexed by grant id, user code, uid and expiry) for every persisted model, and the `apps`
// table for the `Client` model. Interface: node-oidc-provider `example/my_adapter.js`.
//
// Bearer-like models (codes, tokens, sessions) are stored under an HMAC of their id, and the
// `jti` inside the payload is sealed (AES-256-GCM), so a database leak hands out no live code,
// refresh token or session cookie. The sealed copy exists because oidc-provider re-saves device
// codes it found by user code, which needs the id back.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { Logger } from '../platform/log.ts';
import { isCleanString } from '../platform/strings.ts';

const HASHED_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'BackchannelAuthenticationRequest',
  'ClientCredentials',
  'DeviceCode',
  'PushedAuthorizationRequest',
  'RefreshToken',
  'Session',
]);

export type Payload = Record<string, unknown>;

export interface OidcAdapter {
  upsert(id: string, payload: Payload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Payload | undefined>;
  findByUserCode(userCode: string): Promise<Payload | undefined>;
  findByUid(uid: string): Promise<Payload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

export interface AdapterDeps {
  db: Kysely<Database>;
  /** Keyed hash for stored ids (secrets.hmac under a purpose of its own). */
  hashId(id: string): string;
  /** Seals and opens ids kept inside payloads (secrets.box under a purpose of its own). */
  sealId(id: string): string;
  openId(sealed: string): string;
  /** Client metadata for an active app, or undefined. */
  findClient(clientId: string): Promise<Payload | undefined>;
}

/** oidc-provider calls this once per model name. */
export function createAdapterFactory(deps: AdapterDeps): (model: string) => OidcAdapter {
  return (model) =>
    model === 'Client' ? clientAdapter(deps.findClient) : payloadAdapter(model, deps);
}

function payloadAdapter(model: string, { db, hashId, sealId, openId }: AdapterDeps): OidcAdapter {
  const hashed = HASHED_MODELS.has(model);
  const key = (id: string) => (hashed ? hashId(id) : id);

  const live = () =>
    db
      .selectFrom('oidc_payloads')
      .select(['payload', 'consumed_at'])
      .where('model', '=', model)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]));

  const restore = (
    row: { payload: Payload; consumed_at: Date | null } | undefined,
    id: string | null,
  ): Payload | undefined => {
    if (row === undefined) return undefined;
    const { sealedJti, ...payload } = row.payload;
    if (hashed) payload.jti = id ?? (typeof sealedJti === 'string' ? openId(sealedJti) : undefined);
    if (row.consumed_at !== null) payload.consumed = Math.floor(row.consumed_at.getTime() / 1000);
    return payload;
  };

  return {
    async upsert(id, payload, expiresIn) {
      const { jti, ...rest } = payload;
      const stored = hashed ? { ...rest, sealedJti: sealId(id) } : { ...rest, jti };
      const values = {
        model,
        id: key(id),
        payload: JSON.stringify(stored),
        grant_id: typeof payload.grantId === 'string' ? payload.grantId : null,
        user_code: typeof payload.userCode === 'string' ? payload.userCode : null,
        uid: typeof payload.uid === 'string' ? payload.uid : null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await db
        .insertInto('oidc_payloads')
        .values(values)
        .onConflict((oc) =>
          oc.columns(['model', 'id']).doUpdateSet({
            payload: values.payload,
            grant_id: values.grant_id,
            user_code: values.user_code,
            uid: values.uid,
            expires_at: values.expires_at,
          }),
        )
        .execute();
    },
    async find(id) {
      // oidc-provider parses its own forms and passes their ids here unchecked: text
      // PostgreSQL cannot hold (platform/strings.ts) names nothing stored, not a 500.
      if (!isCleanString(id)) return undefined;
      return restore(await live().where('id', '=', key(id)).executeTakeFirst(), id);
    },
    async findByUserCode(userCode) {
      // User codes are stored plain: one alone grants nothing (approving it takes a login).
      if (!isCleanString(userCode)) return undefined;
      const row = await live().where('user_code', '=', userCode).executeTakeFirst();
      return restore(row, null);
    },
    async findByUid(uid) {
      if (!isCleanString(uid)) return undefined;
      return restore(await live().where('uid', '=', uid).executeTakeFirst(), null);
    },
    async consume(id) {
      await db
        .updateTable('oidc_payloads')
        .set({ consumed_at: new Date() })
        .where('model', '=', model)
        .where('id', '=', key(id))
        .execute();
    },
    async destroy(id) {
      await db
        .deleteFrom('oidc_payloads')
        .where('model', '=', model)
        .where('id', '=', key(id))
        .execute();
    },
    async revokeByGrantId(grantId) {
      // Every model of the grant, not only this one: a revoked grant leaves nothing usable.
      await db.deleteFrom('oidc_payloads').where('grant_id', '=', grantId).execute();
    },
  };
}

function clientAdapter(findClient: AdapterDeps['findClient']): OidcAdapter {
  const readOnly = async () => {
    // Apps are managed through /v1/apps and the CLI; dynamic registration is disabled.
    throw new Error('clients are read-only through the OIDC adapter');
  };
  return {
    find: async (id) => (isCleanString(id) ? findClient(id) : undefined),
    upsert: readOnly,
    findByUserCode: async () => undefined,
    findByUid: async () => undefined,
    consume: readOnly,
    destroy: readOnly,
    revokeByGrantId: async () => undefined,
  };
}

// One sweep deletes at most this many rows so it never holds long locks on a busy table.
const SWEEP_BATCH = 5000;

/** Deletes expired payloads; returns how many were removed. */
export async function sweepExpiredPayloads(db: Kysely<Database>): Promise<number> {
  const result = await sql<{ count: number }>`
    with doomed as (
      select model, id from oidc_payloads
      where expires_at < now()
      limit ${SWEEP_BATCH}
    )
    delete from oidc_payloads p using doomed d
    where p.model = d.model and p.id = d.id
  `.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

export function startSweeper(
  db: Kysely<Database>,
  log: Logger,
  intervalMs: number,
): { stop(): void } {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepExpiredPayloads(db)
      .then((removed) => {
        if (removed > 0) log.debug({ removed }, 'swept expired OIDC payloads');
      })
      .catch((error: unknown) => log.warn({ err: error }, 'sweeping OIDC payloads failed'))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
