// Second factors (issue #18 item 4): TOTP (RFC 6238, otplib) with single-use recovery codes,
// and WebAuthn passkeys (@simplewebauthn/server), usable after a password or alone
// (discoverable credentials). The rules live here; the sign-in pages (second-factor-flow.ts)
// and /v1/account/second-factor… (second-factor-routes.ts) call them.
//
// TOTP secrets are sealed like every other stored secret (platform/secrets.ts, the account id
// as associated data, so a row copied to another account does not open). Recovery codes are
// stored as keyed hashes. A TOTP code is accepted once: the time step it matched is recorded
// atomically, and a code of that step or an earlier one is refused afterwards.
import { randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Kysely } from 'kysely';
import { generateSecret, generateURI, verify as verifyTotpCode } from 'otplib';
import { recordAudit } from '../platform/audit.ts';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../database.ts';
import { AppError, BadRequest, Conflict, NotFound, TooManyRequests } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
import type { Secrets } from '../platform/secrets.ts';
import { deleteAccountSessions } from './account-tokens.ts';
import type { RateLimiter } from './rate-limit.ts';
import {
  claimTotpStep,
  countRecoveryCodesLeft,
  deleteAllSecondFactors,
  deletePasskeyRow,
  deleteExpiredStates,
  deleteState,
  deleteTotp,
  findPasskeyByCredentialId,
  findState,
  findTotp,
  insertPasskey,
  listPasskeyRows,
  putPendingTotp,
  recordPasskeyUse,
  renamePasskeyRow,
  replaceRecoveryCodes,
  takeChallenge,
  upsertState,
  useRecoveryCode as useRecoveryCodeRow,
} from './second-factor-queries.ts';
import type { AccountPasskeyRow } from './table.ts';

/** RFC 8176 authentication method references tollhouse reports. */
export type Amr = 'pwd' | 'otp' | 'hwk' | 'swk' | 'mfa' | 'fed' | 'user';

/** The acr values tollhouse issues (docs/second-factor.md). */
export const ACR_PASSWORD = 'urn:tollhouse:acr:pwd';
export const ACR_MFA = 'urn:tollhouse:acr:mfa';
export const ACR_VALUES = [ACR_PASSWORD, ACR_MFA] as const;

const RECOVERY_CODE_COUNT = 10;
// Lower-case letters and digits without 0/o/1/l/i: read off paper and typed back.
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const TOTP_PERIOD_S = 30;
const STATE_TTL_MS = 15 * 60_000;
const PASSKEY_NAME_MAX = 64;

export interface Passkey {
  id: string;
  name: string;
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
}

export interface SecondFactorStatus {
  /** `pending`: a secret was made but no code confirmed it yet (not a factor). */
  totp: 'off' | 'pending' | 'on';
  recoveryCodesLeft: number;
  passkeys: Passkey[];
}

export interface SecondFactorCaller {
  accountId: string;
  /** `acct_…` or `key_…` for the audit log. */
  actor: string;
  requestId: string | null;
}

/** What a sign-in has established so far, kept per interaction between two requests. */
export interface PendingSignIn {
  accountId: string;
  amr: Amr[];
}

/** What an operator's reset of an account's second factors removed. */
export interface SecondFactorReset {
  totpRemoved: boolean;
  /** Unused recovery codes that stopped working. */
  recoveryCodesRemoved: number;
  passkeysRemoved: number;
  /** Browser sessions and refresh-token grants ended (rows). */
  sessionsEnded: number;
}

export class WrongCode extends AppError {
  constructor() {
    super(400, 'WrongCode', 'code: not a valid code for this account (or already used)');
  }
}

export interface SecondFactors {
  status(accountId: string): Promise<SecondFactorStatus>;
  /** A confirmed TOTP secret or at least one passkey. */
  hasSecondFactor(accountId: string): Promise<boolean>;
  beginTotp(caller: SecondFactorCaller, label: string): Promise<{ secret: string; uri: string }>;
  /** The secret being set up (unconfirmed), to show it again, or a new one. */
  totpSetup(caller: SecondFactorCaller, label: string): Promise<{ secret: string; uri: string }>;
  /** Activates the pending secret with a code from the app; returns the recovery codes. */
  confirmTotp(caller: SecondFactorCaller, code: string): Promise<{ recoveryCodes: string[] }>;
  removeTotp(caller: SecondFactorCaller): Promise<void>;
  regenerateRecoveryCodes(caller: SecondFactorCaller): Promise<string[]>;
  /** A sign-in's TOTP code: rate limited, single-use. */
  verifyTotp(accountId: string, code: string): Promise<boolean>;
  /** A sign-in's recovery code: rate limited, single-use, audited. */
  useRecoveryCode(accountId: string, code: string, requestId: string | null): Promise<boolean>;
  listPasskeys(accountId: string): Promise<Passkey[]>;
  passkeyRegistrationOptions(
    accountId: string,
    email: string,
  ): Promise<PublicKeyCredentialCreationOptionsJSON>;
  registerPasskey(
    caller: SecondFactorCaller,
    input: { name: string; response: RegistrationResponseJSON },
  ): Promise<Passkey>;
  renamePasskey(caller: SecondFactorCaller, id: string, name: string): Promise<Passkey>;
  removePasskey(caller: SecondFactorCaller, id: string): Promise<void>;
  /** Options for a sign-in with a passkey, bound to the interaction `uid`: the account's
   * passkeys (second factor), or any discoverable one (`accountId` null: passwordless). */
  passkeySignInOptions(
    uid: string,
    accountId: string | null,
  ): Promise<PublicKeyCredentialRequestOptionsJSON | null>;
  /** The account and methods a passkey answer proves, or null. */
  verifyPasskeySignIn(
    uid: string,
    response: AuthenticationResponseJSON,
    accountId: string | null,
  ): Promise<{ accountId: string; amr: Amr[] } | null>;
  pending(uid: string): Promise<PendingSignIn | null>;
  setPending(uid: string, pending: PendingSignIn): Promise<void>;
  clearPending(uid: string): Promise<void>;
  /**
   * The operator's way back in for a holder who lost every factor: removes the account's
   * authenticator app (also one being set up), recovery codes and passkeys, and ends its
   * sessions, in one transaction, audited as `account.reset_second_factor`.
   */
  resetAll(
    accountId: string,
    actor: { id: string; requestId?: string | null },
  ): Promise<SecondFactorReset>;
  /** Deletes expired sign-in and enrolment states (they are ignored once expired anyway). */
  sweep(): Promise<void>;
}

export interface SecondFactorDeps {
  db: Kysely<Database>;
  secrets: Secrets;
  clock: Clock;
  publicUrl: string;
  /** Per account: TOTP and recovery code attempts (a 6-digit code is guessable otherwise). */
  attempts: RateLimiter;
}

export function createSecondFactors(deps: SecondFactorDeps): SecondFactors {
  const { db, secrets, clock } = deps;
  const box = secrets.box('totp-secrets');
  const url = new URL(deps.publicUrl);
  const rpID = url.hostname;
  const origin = url.origin;
  const rpName = `tollhouse (${url.host})`;
  const stateKey = (purpose: string, id: string) =>
    secrets.hmac('second-factor-states', `${purpose}:${id}`);
  const recoveryHash = (accountId: string, code: string) =>
    secrets.hmac('recovery-codes', `${accountId}:${normalizeRecoveryCode(code)}`);

  function limit(accountId: string) {
    const wait = deps.attempts.hit(`second-factor:${accountId}`);
    if (wait > 0) {
      throw new TooManyRequests(`Too many second-factor attempts; retry in ${wait} s`, {
        headers: { 'Retry-After': String(wait) },
      });
    }
  }

  async function matchStep(
    accountId: string,
    code: string,
    lastStep: bigint | null,
  ): Promise<bigint | null> {
    const row = await findTotp(db, accountId);
    if (row === undefined || !/^[0-9]{6}$/.test(code)) return null;
    const secret = box.open(row.secret_sealed, accountId);
    const result = await verifyTotpCode({
      secret,
      token: code,
      epoch: Math.floor(clock().getTime() / 1000),
      // One step either way: phones' clocks drift, and a code typed at the end of its step
      // arrives in the next one (RFC 6238 §5.2).
      epochTolerance: TOTP_PERIOD_S,
      ...(lastStep === null ? {} : { afterTimeStep: Number(lastStep) }),
    });
    // The TOTP strategy's result carries the matched step (the HOTP one, never used here, not).
    return result.valid && 'timeStep' in result ? BigInt(result.timeStep) : null;
  }

  async function newRecoveryCodes(trx: Kysely<Database>, accountId: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, mintRecoveryCode);
    await replaceRecoveryCodes(
      trx,
      accountId,
      codes.map((c) => recoveryHash(accountId, c)),
      clock(),
    );
    return codes;
  }

  async function listPasskeys(accountId: string): Promise<Passkey[]> {
    return (await listPasskeyRows(db, accountId)).map(toPasskey);
  }

  async function hasSecondFactor(accountId: string): Promise<boolean> {
    const totp = await findTotp(db, accountId);
    if (totp?.confirmed_at != null) return true;
    return (await listPasskeyRows(db, accountId)).length > 0;
  }

  return {
    async status(accountId) {
      const totp = await findTotp(db, accountId);
      return {
        totp: totp === undefined ? 'off' : totp.confirmed_at === null ? 'pending' : 'on',
        recoveryCodesLeft: await countRecoveryCodesLeft(db, accountId),
        passkeys: await listPasskeys(accountId),
      };
    },

    hasSecondFactor,

    async beginTotp(caller, label) {
      const secret = generateSecret();
      const sealed = box.seal(secret, caller.accountId);
      if (!(await putPendingTotp(db, { accountId: caller.accountId, sealed, now: clock() }))) {
        throw new Conflict('An authenticator app is already set up; remove it first');
      }
      return {
        secret,
        uri: generateURI({ issuer: `tollhouse ${url.host}`, label, secret }),
      };
    },

    async totpSetup(caller, label) {
      const row = await findTotp(db, caller.accountId);
      if (row !== undefined && row.confirmed_at === null) {
        const secret = box.open(row.secret_sealed, caller.accountId);
        return { secret, uri: generateURI({ issuer: `tollhouse ${url.host}`, label, secret }) };
      }
      return this.beginTotp(caller, label);
    },

    async confirmTotp(caller, code) {
      limit(caller.accountId);
      const row = await findTotp(db, caller.accountId);
      if (row === undefined) throw new NotFound('No authenticator app is being set up');
      if (row.confirmed_at !== null) throw new Conflict('The authenticator app is already set up');
      const step = await matchStep(caller.accountId, code.trim(), row.last_step);
      if (step === null) throw new WrongCode();
      return db.transaction().execute(async (trx) => {
        if (!(await claimTotpStep(trx, caller.accountId, step, { now: clock() }))) {
          throw new WrongCode();
        }
        const recoveryCodes = await newRecoveryCodes(trx, caller.accountId);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.totp_enable',
          subject: caller.accountId,
          requestId: caller.requestId,
        });
        return { recoveryCodes };
      });
    },

    async removeTotp(caller) {
      await db.transaction().execute(async (trx) => {
        if (!(await deleteTotp(trx, caller.accountId))) {
          throw new NotFound('No authenticator app is set up');
        }
        // Recovery codes stand in for a factor; with none left they would be one on their own.
        if ((await listPasskeyRows(trx, caller.accountId)).length === 0) {
          await replaceRecoveryCodes(trx, caller.accountId, [], clock());
        }
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.totp_disable',
          subject: caller.accountId,
          requestId: caller.requestId,
        });
      });
    },

    async regenerateRecoveryCodes(caller) {
      if (!(await hasSecondFactor(caller.accountId))) {
        throw new Conflict('Set up an authenticator app or a passkey first');
      }
      return db.transaction().execute(async (trx) => {
        const codes = await newRecoveryCodes(trx, caller.accountId);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.recovery_codes_regenerate',
          subject: caller.accountId,
          requestId: caller.requestId,
        });
        return codes;
      });
    },

    async verifyTotp(accountId, code) {
      limit(accountId);
      const row = await findTotp(db, accountId);
      if (row?.confirmed_at == null) return false;
      const step = await matchStep(accountId, code.trim(), row.last_step);
      return step !== null && (await claimTotpStep(db, accountId, step, null));
    },

    async useRecoveryCode(accountId, code, requestId) {
      limit(accountId);
      if (normalizeRecoveryCode(code).length !== 10) return false;
      return db.transaction().execute(async (trx) => {
        const used = await useRecoveryCodeRow(
          trx,
          accountId,
          recoveryHash(accountId, code),
          clock(),
        );
        if (!used) return false;
        await recordAudit(trx, {
          actor: accountId,
          action: 'account.recovery_code_use',
          subject: accountId,
          requestId,
          details: { codes_left: await countRecoveryCodesLeft(trx, accountId) },
        });
        return true;
      });
    },

    listPasskeys,

    async passkeyRegistrationOptions(accountId, email) {
      const existing = await listPasskeyRows(db, accountId);
      const options = await generateRegistrationOptions({
        rpName,
        rpID,
        userName: email,
        userID: new TextEncoder().encode(accountId),
        attestationType: 'none',
        excludeCredentials: existing.map((p) => ({
          id: p.credential_id,
          transports: p.transports,
        })),
        // Discoverable, so the same passkey also signs in without a password.
        authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
      });
      await upsertState(
        db,
        stateKey('register', accountId),
        { challenge: options.challenge },
        new Date(clock().getTime() + STATE_TTL_MS),
      );
      return options;
    },

    async registerPasskey(caller, input) {
      const name = cleanName(input.name);
      const challenge = await takeChallenge(db, stateKey('register', caller.accountId), clock());
      if (challenge === null) {
        throw new BadRequest('response: no passkey registration is under way; start again');
      }
      let verified;
      try {
        verified = await verifyRegistrationResponse({
          response: input.response,
          expectedChallenge: challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserVerification: false,
        });
      } catch (error) {
        throw new BadRequest(`response: ${(error as Error).message}`);
      }
      if (!verified.verified) throw new BadRequest('response: the passkey could not be verified');
      const info = verified.registrationInfo;
      if ((await findPasskeyByCredentialId(db, info.credential.id)) !== undefined) {
        throw new Conflict('This passkey is already registered');
      }
      const row = {
        id: newId('pk'),
        account_id: caller.accountId,
        credential_id: info.credential.id,
        public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
        sign_count: BigInt(info.credential.counter),
        transports: info.credential.transports ?? [],
        device_type: info.credentialDeviceType,
        backed_up: info.credentialBackedUp,
        name,
        created_at: clock(),
      };
      await db.transaction().execute(async (trx) => {
        await insertPasskey(trx, row);
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.passkey_add',
          subject: caller.accountId,
          requestId: caller.requestId,
          details: { passkey_id: row.id },
        });
      });
      return toPasskey({ ...row, last_used_at: null });
    },

    async renamePasskey(caller, id, name) {
      const row = await renamePasskeyRow(db, caller.accountId, id, cleanName(name));
      if (row === undefined) throw new NotFound(`No passkey ${id}`);
      return toPasskey(row);
    },

    async removePasskey(caller, id) {
      await db.transaction().execute(async (trx) => {
        if (!(await deletePasskeyRow(trx, caller.accountId, id))) {
          throw new NotFound(`No passkey ${id}`);
        }
        await recordAudit(trx, {
          actor: caller.actor,
          action: 'account.passkey_remove',
          subject: caller.accountId,
          requestId: caller.requestId,
          details: { passkey_id: id },
        });
      });
    },

    async passkeySignInOptions(uid, accountId) {
      const allow = accountId === null ? [] : await listPasskeyRows(db, accountId);
      if (accountId !== null && allow.length === 0) return null;
      const options = await generateAuthenticationOptions({
        rpID,
        allowCredentials: allow.map((p) => ({ id: p.credential_id, transports: p.transports })),
        // Alone, a passkey must prove the person too (PIN or biometrics), not only possession.
        userVerification: accountId === null ? 'required' : 'preferred',
      });
      await upsertState(
        db,
        stateKey('sign-in', uid),
        { challenge: options.challenge },
        new Date(clock().getTime() + STATE_TTL_MS),
      );
      return options;
    },

    async verifyPasskeySignIn(uid, response, accountId) {
      const challenge = await takeChallenge(db, stateKey('sign-in', uid), clock());
      if (challenge === null || typeof response?.id !== 'string') return null;
      const row = await findPasskeyByCredentialId(db, response.id);
      if (row === undefined || (accountId !== null && row.account_id !== accountId)) return null;
      let verified;
      try {
        verified = await verifyAuthenticationResponse({
          response,
          expectedChallenge: challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          credential: {
            id: row.credential_id,
            publicKey: new Uint8Array(Buffer.from(row.public_key, 'base64url')),
            counter: Number(row.sign_count),
            transports: row.transports,
          },
          requireUserVerification: accountId === null,
        });
      } catch {
        return null;
      }
      if (!verified.verified) return null;
      const info = verified.authenticationInfo;
      await recordPasskeyUse(db, row.id, BigInt(info.newCounter), clock());
      // A synced passkey is a software key; a device-bound one (security key, TPM) hardware.
      const method: Amr = row.device_type === 'multiDevice' ? 'swk' : 'hwk';
      return {
        accountId: row.account_id,
        amr: info.userVerified ? [method, 'user'] : [method],
      };
    },

    async pending(uid) {
      const row = await findState(db, stateKey('sign-in', uid), clock());
      if (row === undefined || row.account_id === null) return null;
      return { accountId: row.account_id, amr: row.amr as Amr[] };
    },

    async setPending(uid, pending) {
      await upsertState(
        db,
        stateKey('sign-in', uid),
        { accountId: pending.accountId, amr: pending.amr },
        new Date(clock().getTime() + STATE_TTL_MS),
      );
    },

    async clearPending(uid) {
      await deleteState(db, stateKey('sign-in', uid));
    },

    async resetAll(accountId, actor) {
      return db.transaction().execute(async (trx) => {
        const removed = await deleteAllSecondFactors(trx, accountId);
        // Whoever holds a session now may be the one who took the phone: after the reset the
        // holder signs in afresh, and so must anyone else.
        const sessionsEnded = await deleteAccountSessions(trx, accountId);
        const result: SecondFactorReset = {
          totpRemoved: removed.totp,
          recoveryCodesRemoved: removed.recoveryCodes,
          passkeysRemoved: removed.passkeys,
          sessionsEnded,
        };
        await recordAudit(trx, {
          actor: actor.id,
          action: 'account.reset_second_factor',
          subject: accountId,
          requestId: actor.requestId ?? null,
          details: {
            totp_removed: result.totpRemoved,
            recovery_codes_removed: result.recoveryCodesRemoved,
            passkeys_removed: result.passkeysRemoved,
            sessions_ended: result.sessionsEnded,
          },
        });
        return result;
      });
    },

    async sweep() {
      await deleteExpiredStates(db, clock());
    },
  };
}

function toPasskey(row: AccountPasskeyRow): Passkey {
  return {
    id: row.id,
    name: row.name,
    deviceType: row.device_type,
    backedUp: row.backed_up,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

function cleanName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > PASSKEY_NAME_MAX) {
    throw new BadRequest(`name: 1 to ${PASSKEY_NAME_MAX} characters`);
  }
  return trimmed;
}

function mintRecoveryCode(): string {
  const bytes = randomBytes(10);
  let code = '';
  // 31 letters: the modulo bias (256 % 31) is immaterial for 10 characters of ~5 bits each.
  for (const b of bytes) code += RECOVERY_ALPHABET[b % RECOVERY_ALPHABET.length];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}

/** The second factor's method among `amr`, if any (a password or upstream sign-in is not). */
export function isMultiFactor(amr: readonly string[]): boolean {
  const first = amr.some((m) => m === 'pwd' || m === 'fed');
  const second = amr.some((m) => m === 'otp' || m === 'hwk' || m === 'swk');
  // A passkey with user verification is two factors on its own: the device and a PIN or
  // biometric check (NIST SP 800-63B "multi-factor cryptographic authenticator").
  const verifiedKey = amr.includes('user') && amr.some((m) => m === 'hwk' || m === 'swk');
  return (first && second) || verifiedKey;
}

/** The amr and acr a finished sign-in reports (RFC 8176; `mfa` when two factors). */
export function claimsFor(amr: readonly Amr[]): { amr: string[]; acr: string } {
  const multi = isMultiFactor(amr);
  // `mfa` is a conclusion, not a method: drawn here, never carried over from the input.
  const methods = [...new Set(amr)].filter((m) => m !== 'mfa');
  return {
    amr: multi ? [...methods, 'mfa'] : methods,
    acr: multi ? ACR_MFA : ACR_PASSWORD,
  };
}
