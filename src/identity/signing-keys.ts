// OIDC signing keys: created on first start, private JWKs sealed at rest (AES-256-GCM under a
// TOLLHOUSE_SECRET subkey, kid as authenticated context), rotated by `tollhouse identity
// rotate-keys`. Every live key is published in the JWKS: the `next` key is published one
// rotation before it signs, and a replaced key stays published until every token it signed
// has expired. A rotation NOTIFYs SIGNING_KEYS_CHANNEL; running replicas reload (live-keys.ts).
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { SecretBox } from '../platform/secrets.ts';
import { insertSigningKey, listLiveSigningKeys } from './queries.ts';

// ES256: as strong as RSA-3072 for signatures and ~10x cheaper to sign, which is what the
// token endpoint spends its time on. Every current JOSE library verifies it.
export const SIGNING_ALG = 'ES256';

/** NOTIFY channel: the set of signing keys changed (no payload). */
export const SIGNING_KEYS_CHANNEL = 'identity_signing_keys';

export interface SigningKeySet {
  /** Private JWKs for oidc-provider, the signing key first (it signs with the first match). */
  privateJwks: JWK[];
  /** Public JWKs of every live key, for local verification. */
  publicJwks: JWK[];
  activeKid: string;
  /** When the next retired key stops being published (a reload is due then), or null. */
  nextRetirementAt: Date | null;
}

async function newKey(box: SecretBox) {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const meta = { kid, alg: SIGNING_ALG, use: 'sig' };
  const privateJwk = { ...(await exportJWK(privateKey)), ...meta };
  const publicJwk = { ...(await exportJWK(publicKey)), ...meta };
  return {
    kid,
    alg: SIGNING_ALG,
    public_jwk: JSON.stringify(publicJwk),
    private_jwk_sealed: box.seal(JSON.stringify(privateJwk), kid),
  };
}

/** Loads the live keys, creating the first signing key (and a next one) if there is none. */
export async function loadSigningKeys(
  db: Kysely<Database>,
  box: SecretBox,
  now: Date = new Date(),
): Promise<SigningKeySet> {
  let rows = await listLiveSigningKeys(db, now);
  if (!rows.some((r) => r.status === 'active')) {
    try {
      await db.transaction().execute(async (trx) => {
        await insertSigningKey(trx, { ...(await newKey(box)), status: 'active' });
        await insertSigningKey(trx, { ...(await newKey(box)), status: 'next' });
      });
    } catch (error) {
      // Another replica created the first key at the same moment (unique active index): use it.
      rows = await listLiveSigningKeys(db, now);
      if (!rows.some((r) => r.status === 'active')) throw error;
    }
    rows = await listLiveSigningKeys(db, now);
  }
  const order = { active: 0, next: 1, retired: 2 } as const;
  rows.sort((a, b) => order[a.status] - order[b.status]);
  const active = rows[0];
  if (active === undefined) throw new Error('no active signing key');
  let privateJwks: JWK[];
  try {
    privateJwks = rows.map((r) => JSON.parse(box.open(r.private_jwk_sealed, r.kid)) as JWK);
  } catch (error) {
    throw new Error(
      'cannot decrypt the OIDC signing keys: TOLLHOUSE_SECRET is not the one they were sealed with',
      { cause: error },
    );
  }
  const retirements = rows
    .filter((r) => r.status === 'retired' && r.retire_after !== null)
    .map((r) => (r.retire_after as Date).getTime());
  return {
    privateJwks,
    publicJwks: rows.map((r) => r.public_jwk as JWK),
    activeKid: active.kid,
    nextRetirementAt: retirements.length === 0 ? null : new Date(Math.min(...retirements)),
  };
}

export interface RotationResult {
  retiredKid: string | null;
  activeKid: string;
  nextKid: string;
  retireAfter: Date;
}

/**
 * The published next key starts signing, the current key is retired once `retireAfterSeconds`
 * (the longest token lifetime) has passed, and a new next key is published. The NOTIFY is sent
 * on commit: running replicas reload their keys at once (no restart).
 */
export async function rotateSigningKeys(
  db: Kysely<Database>,
  box: SecretBox,
  retireAfterSeconds: number,
  now: Date = new Date(),
): Promise<RotationResult> {
  const retireAfter = new Date(now.getTime() + retireAfterSeconds * 1000);
  return db.transaction().execute(async (trx) => {
    const retired = await trx
      .updateTable('signing_keys')
      .set({ status: 'retired', retire_after: retireAfter })
      .where('status', '=', 'active')
      .returning('kid')
      .executeTakeFirst();
    const promoted = await trx
      .updateTable('signing_keys')
      .set({ status: 'active' })
      .where('kid', '=', (eb) =>
        eb
          .selectFrom('signing_keys')
          .select('kid')
          .where('status', '=', 'next')
          .orderBy('created_at')
          .limit(1),
      )
      .returning('kid')
      .executeTakeFirst();
    let activeKid = promoted?.kid;
    if (activeKid === undefined) {
      const key = await newKey(box);
      await insertSigningKey(trx, { ...key, status: 'active' });
      activeKid = key.kid;
    }
    const next = await newKey(box);
    await insertSigningKey(trx, { ...next, status: 'next' });
    await sql`select pg_notify(${SIGNING_KEYS_CHANNEL}, '')`.execute(trx);
    return { retiredKid: retired?.kid ?? null, activeKid, nextKid: next.kid, retireAfter };
  });
}
