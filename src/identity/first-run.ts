// First run (issue #18 item 6): while no operator (admin account) exists, `serve` mints a
// one-time setup link and logs it; /setup creates the first operator. The token lives only in
// this process, as its HMAC: a restart mints a fresh link and the old one dies with the
// process, and no table or migration is needed for a secret that exists once per install. With
// several replicas each logs its own link, which works only on the replica that printed it.
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { timingSafeEqual } from 'node:crypto';
import type { Database } from '../database.ts';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import { Conflict } from '../platform/errors.ts';
import { newId, randomBase62 } from '../platform/ids.ts';
import type { Logger } from '../platform/log.ts';
import type { Secrets } from '../platform/secrets.ts';
import { hashPassword } from './passwords.ts';
import { insertAccount, toAccount } from './queries.ts';
import type { Account } from './queries.ts';
import { checkEmail, checkName, checkPassword } from './service.ts';

export const SETUP_PATH = '/setup';
// Long enough to come back to the next day; a restart mints a new one anyway.
export const SETUP_TTL_MS = 24 * 3_600_000;
const TOKEN_HASH_PURPOSE = 'first-run-setup-token';
// Like the onboarding tokens (account-tokens.ts): a purpose prefix, 256 random bits in base62.
const TOKEN_SHAPE = /^thsu_[0-9A-Za-z]{43}$/;
// Shared by every tollhouse process: the transaction-level advisory lock that makes "no
// operator yet, create one" atomic across concurrent submissions and replicas.
const FIRST_OPERATOR_LOCK_KEY = 7_314_008_018;
const UNIQUE_VIOLATION = '23505';

export interface FirstRun {
  /** Whether any admin account exists (the console's sign-in note and /setup ask). */
  operatorExists(): Promise<boolean>;
  /** Mints a new link when no operator exists (killing any earlier one); null otherwise. */
  mint(): Promise<string | null>;
  /** The link minted by this process, while it is still usable by its clock; else null. */
  readonly link: string | null;
  /** Whether `token` is the live setup token (no operator check). */
  accepts(token: unknown): token is string;
  /** Creates the first operator and kills the token; null when the token is not live or an
   * operator exists (one answer for both). Throws InvalidRequest for bad fields. */
  createOperator(
    token: unknown,
    input: { email: string; name: string | null; password: string },
  ): Promise<Account | null>;
}

export function createFirstRun(deps: {
  db: Kysely<Database>;
  secrets: Secrets;
  clock: Clock;
  log: Logger;
  publicUrl: string;
  onChanged?: (accountId: string) => Promise<void> | void;
}): FirstRun {
  const { db, secrets, clock, log } = deps;
  let current: { hash: Buffer; expiresAt: number; link: string } | null = null;
  const hash = (token: string) => Buffer.from(secrets.hmac(TOKEN_HASH_PURPOSE, token));

  async function operatorExists(): Promise<boolean> {
    const row = await db
      .selectFrom('accounts')
      .select('id')
      .where('is_admin', '=', true)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  function live(): typeof current {
    if (current !== null && clock().getTime() >= current.expiresAt) current = null;
    return current;
  }

  return {
    operatorExists,
    async mint() {
      current = null;
      if (await operatorExists()) return null;
      const token = `thsu_${randomBase62(32)}`;
      const link = `${deps.publicUrl}${SETUP_PATH}?token=${token}`;
      const expiresAt = clock().getTime() + SETUP_TTL_MS;
      current = { hash: hash(token), expiresAt, link };
      log.warn(
        { setup_url: link, expires_at: new Date(expiresAt).toISOString() },
        'no operator yet: open the setup link to create the first operator',
      );
      return link;
    },
    get link() {
      return live()?.link ?? null;
    },
    accepts(token): token is string {
      const now = live();
      if (now === null || typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return false;
      const given = hash(token);
      return given.length === now.hash.length && timingSafeEqual(given, now.hash);
    },
    async createOperator(token, input) {
      if (!this.accepts(token)) return null;
      const email = checkEmail(input.email);
      checkPassword(input.password);
      const name = checkName(input.name === null || input.name.trim() === '' ? null : input.name);
      const passwordHash = await hashPassword(input.password);
      let row;
      try {
        row = await db.transaction().execute(async (trx) => {
          // One at a time, then look: two submissions at once cannot both find no operator.
          await sql`select pg_advisory_xact_lock(${FIRST_OPERATOR_LOCK_KEY})`.execute(trx);
          const admin = await trx
            .selectFrom('accounts')
            .select('id')
            .where('is_admin', '=', true)
            .limit(1)
            .executeTakeFirst();
          if (admin !== undefined) return null;
          const created = await insertAccount(trx, {
            id: newId('acct'),
            email,
            name,
            password_hash: passwordHash,
            is_admin: true,
            email_verified: true,
          });
          await recordAudit(trx, {
            actor: created.id,
            action: 'account.first_operator',
            subject: created.id,
            requestId: null,
            details: {},
          });
          return created;
        });
      } catch (error) {
        // The address belongs to an existing (non-admin) account.
        if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
          throw new Conflict('An account with this email already exists');
        }
        throw error;
      }
      // Used or not, an operator now exists: the link is dead either way.
      current = null;
      if (row === null) return null;
      await deps.onChanged?.(row.id);
      log.info({ account_id: row.id }, 'first operator created through the setup link');
      return toAccount(row);
    },
  };
}
