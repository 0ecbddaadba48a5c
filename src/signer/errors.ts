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
