// Errors of the signer. Start-up problems (keystore, settings) are SignerStartupError: the
// command line prints their message as one line and exits 1, without a stack (SetupError).
import { AppError, Conflict, ServiceUnavailable, SetupError } from '../platform/errors.ts';
import type { AppErrorOptions } from '../platform/errors.ts';

export class SignerStartupError extends SetupError {}

export class KeystoreUnreadable extends SignerStartupError {}

export class WrongKeystorePassword extends SignerStartupError {
  constructor(file: string) {
    super(
      `cannot open the signer keystore ${file}: wrong password (check SIGNER_PASSWORD or SIGNER_PASSWORD_FILE)`,
    );
  }
}

/** The signer is not configured or cannot act now (no chain, no keystore). */
export class SignerUnavailable extends ServiceUnavailable {
  constructor(message: string, options?: AppErrorOptions) {
    super(message, options);
  }
}

/** Another replica or command holds the funding lock. */
export class SignerBusy extends Conflict {
  constructor(message: string, options?: AppErrorOptions) {
    super(message, options);
  }
}

/** The chain refused the transaction (reverted, or the node rejected it). */
export class TransactionFailed extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(502, 'TransactionFailed', message, options);
  }
}

/**
 * An operator transaction that cannot be sent as asked (docs/signer.md, "Operations over the
 * API"): the chain state or a cap says no, or the confirmation token is not usable. Always 409:
 * the request was well formed, the state of the signer refuses it.
 */
export type OperationRefusal =
  | 'InsufficientEth'
  | 'CapExceeded'
  | 'UnlockPending'
  | 'NoUnlockPending'
  | 'UnlockNotFinished'
  | 'NothingToUnlock'
  | 'NothingToWithdraw'
  | 'WouldRevert'
  | 'ConfirmationInvalid'
  | 'ConfirmationUsed';

export class OperationRefused extends AppError {
  constructor(code: OperationRefusal, message: string, options?: AppErrorOptions) {
    super(409, code, message, options);
  }
}
