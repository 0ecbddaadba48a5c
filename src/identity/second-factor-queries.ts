// SQL of the second factors (issue #18 item 4): TOTP secrets, recovery codes, passkeys and the
// short-lived sign-in/enrolment state. db (or a Transaction) is the first parameter.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { AccountPasskeyRow } from './table.ts';

type Db = Kysely<Database>;

export async function findTotp(db: Db, accountId: string) {
  return db
    .selectFrom('account_totp')
    .selectAll()
    .where('account_id', '=', accountId)
    .executeTakeFirst();
}

/** A new, unconfirmed secret replaces any unconfirmed one; a confirmed one is kept (0 rows). */
export async function putPendingTotp(
  db: Db,
  row: { accountId: string; sealed: string; now: Date },
): Promise<boolean> {
  const result = await db
    .insertInto('account_totp')
    .values({
      account_id: row.accountId,
      secret_sealed: row.sealed,
      confirmed_at: null,
      last_step: null,
      created_at: row.now,
    })
    .onConflict((oc) =>
      oc
        .column('account_id')
        .doUpdateSet({ secret_sealed: row.sealed, created_at: row.now, last_step: null })
        .where('account_totp.confirmed_at', 'is', null),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
}

/**
 * Records `step` as used if it is later than the last used one: the one atomic check that
 * makes a code single-use even when two requests carry it at once. `confirm` also activates
 * an unconfirmed secret.
 */
export async function claimTotpStep(
  db: Db,
  accountId: string,
  step: bigint,
  confirm: { now: Date } | null,
): Promise<boolean> {
  let query = db
    .updateTable('account_totp')
    .set(confirm === null ? { last_step: step } : { last_step: step, confirmed_at: confirm.now })
    .where('account_id', '=', accountId)
    .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', step)]));
  query =
    confirm === null
      ? query.where('confirmed_at', 'is not', null)
      : query.where('confirmed_at', 'is', null);
  const result = await query.executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export async function deleteTotp(db: Db, accountId: string): Promise<boolean> {
  const result = await db
    .deleteFrom('account_totp')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function replaceRecoveryCodes(
  db: Db,
  accountId: string,
  hashes: readonly string[],
  now: Date,
): Promise<void> {
  await db.deleteFrom('account_recovery_codes').where('account_id', '=', accountId).execute();
  if (hashes.length === 0) return;
  await db
    .insertInto('account_recovery_codes')
    .values(hashes.map((h) => ({ code_hash: h, account_id: accountId, created_at: now })))
    .execute();
}

export async function countRecoveryCodesLeft(db: Db, accountId: string): Promise<number> {
  const row = await db
    .selectFrom('account_recovery_codes')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('account_id', '=', accountId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Marks the code used if it is this account's and unused: true once per code. */
export async function useRecoveryCode(
  db: Db,
  accountId: string,
  hash: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('account_recovery_codes')
    .set({ used_at: now })
    .where('code_hash', '=', hash)
    .where('account_id', '=', accountId)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export async function listPasskeyRows(db: Db, accountId: string): Promise<AccountPasskeyRow[]> {
  return db
    .selectFrom('account_passkeys')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

export async function findPasskeyByCredentialId(
  db: Db,
  credentialId: string,
): Promise<AccountPasskeyRow | undefined> {
  return db
    .selectFrom('account_passkeys')
    .selectAll()
    .where('credential_id', '=', credentialId)
    .executeTakeFirst();
}

export async function insertPasskey(
  db: Db,
  row: Omit<AccountPasskeyRow, 'transports' | 'last_used_at'> & { transports: string[] },
): Promise<void> {
  await db
    .insertInto('account_passkeys')
    .values({ ...row, transports: JSON.stringify(row.transports), last_used_at: null })
    .execute();
}

export async function recordPasskeyUse(
  db: Db,
  id: string,
  signCount: bigint,
  now: Date,
): Promise<void> {
  await db
    .updateTable('account_passkeys')
    .set({ sign_count: signCount, last_used_at: now })
    .where('id', '=', id)
    .execute();
}

export async function renamePasskeyRow(
  db: Db,
  accountId: string,
  id: string,
  name: string,
): Promise<AccountPasskeyRow | undefined> {
  return db
    .updateTable('account_passkeys')
    .set({ name })
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .returningAll()
    .executeTakeFirst();
}

export async function deletePasskeyRow(db: Db, accountId: string, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('account_passkeys')
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function findState(db: Db, keyHash: string, now: Date) {
  return db
    .selectFrom('second_factor_states')
    .selectAll()
    .where('key_hash', '=', keyHash)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** Sets the listed fields of a state, creating it if needed (expiry restarts). */
export async function upsertState(
  db: Db,
  keyHash: string,
  fields: { accountId?: string | null; amr?: string[]; challenge?: string | null },
  expiresAt: Date,
): Promise<void> {
  const set = {
    ...(fields.accountId === undefined ? {} : { account_id: fields.accountId }),
    ...(fields.amr === undefined ? {} : { amr: JSON.stringify(fields.amr) }),
    ...(fields.challenge === undefined ? {} : { challenge: fields.challenge }),
    expires_at: expiresAt,
  };
  await db
    .insertInto('second_factor_states')
    .values({ key_hash: keyHash, ...set })
    .onConflict((oc) => oc.column('key_hash').doUpdateSet(set))
    .execute();
}

/** Takes the challenge out of a state (a challenge answers once) and returns it. */
export async function takeChallenge(db: Db, keyHash: string, now: Date): Promise<string | null> {
  // RETURNING shows the row after the update: the old value comes from the locked subquery.
  const result = await sql<{ challenge: string }>`
    update second_factor_states s set challenge = null
    from (select key_hash, challenge from second_factor_states
          where key_hash = ${keyHash} for update) old
    where s.key_hash = old.key_hash and s.expires_at > ${now} and old.challenge is not null
    returning old.challenge`.execute(db);
  return result.rows[0]?.challenge ?? null;
}

export async function deleteState(db: Db, keyHash: string): Promise<void> {
  await db.deleteFrom('second_factor_states').where('key_hash', '=', keyHash).execute();
}

export async function deleteExpiredStates(db: Db, now: Date): Promise<void> {
  await db.deleteFrom('second_factor_states').where('expires_at', '<=', now).execute();
}

/** Removes every second factor of the account: its TOTP secret (set up or not), recovery
 * codes and passkeys. Returns what was there. */
export async function deleteAllSecondFactors(
  db: Db,
  accountId: string,
): Promise<{ totp: boolean; recoveryCodes: number; passkeys: number }> {
  const totp = await db
    .deleteFrom('account_totp')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  // Used codes go too (the old set is gone); only unused ones were a way in.
  const codes = await db
    .deleteFrom('account_recovery_codes')
    .where('account_id', '=', accountId)
    .returning('used_at')
    .execute();
  const passkeys = await db
    .deleteFrom('account_passkeys')
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return {
    totp: totp.numDeletedRows > 0n,
    recoveryCodes: codes.filter((c) => c.used_at === null).length,
    passkeys: Number(passkeys.numDeletedRows),
  };
}
