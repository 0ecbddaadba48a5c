// Identity's refusals that have a name of their own (issue #18: sign-up, e-mail, tokens).
import { AppError } from '../platform/errors.ts';
import type { AppErrorOptions } from '../platform/errors.ts';

/** The account's address is not confirmed: it gets no gateway or signer credentials yet. */
export class EmailNotVerified extends AppError {
  constructor(message?: string, options?: AppErrorOptions) {
    super(
      403,
      'EmailNotVerified',
      message ??
        'Confirm the e-mail address of the account first (open the link in the verification e-mail): until then it gets no gateway or signer credentials',
      options,
    );
  }
}

/** SIGNUP_POLICY does not let this person create an account. */
export class SignUpClosed extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(403, 'SignUpClosed', message, options);
  }
}

/** SIGNUP_EMAIL_DOMAINS does not list the address's domain. */
export class EmailDomainNotAllowed extends AppError {
  constructor(domains: readonly string[], options?: AppErrorOptions) {
    super(
      403,
      'EmailDomainNotAllowed',
      `Sign-up is limited to addresses at ${domains.join(', ')}`,
      options,
    );
  }
}

/** A link that is unknown, used, expired or of another kind: one answer for all of them. */
export class InvalidLink extends AppError {
  constructor(options?: AppErrorOptions) {
    super(
      400,
      'InvalidLink',
      'This link is not valid: it has been used already, has expired, or was copied incompletely',
      options,
    );
  }
}

/** The flow needs e-mail and SMTP_URL is not set. */
export class EmailNotConfigured extends AppError {
  constructor(options?: AppErrorOptions) {
    super(
      503,
      'EmailNotConfigured',
      'E-mail is not configured on this server (SMTP_URL): ask its operator for the link instead',
      { expose: true, ...options },
    );
  }
}

/** The mail server did not accept the message. */
export class EmailNotSent extends AppError {
  constructor(options?: AppErrorOptions) {
    super(502, 'EmailNotSent', 'The mail server did not accept the message; try again later', {
      expose: true,
      ...options,
    });
  }
}

/** Self-service changes ask for the current password again; it was not the right one. A 400
 * (a wrong field), not 401/403: the credential that made the request is fine. */
export class WrongPassword extends AppError {
  constructor(options?: AppErrorOptions) {
    super(400, 'WrongPassword', 'current_password: not the password of this account', options);
  }
}

/** An account holder may not send invitations here (setting off, policy, unconfirmed address). */
export class InvitationsNotAllowed extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(403, 'InvitationsNotAllowed', message, options);
  }
}

/** A confirmation link was asked for an address that is confirmed already. */
export class AlreadyVerified extends AppError {
  constructor(options?: AppErrorOptions) {
    super(
      409,
      'AlreadyVerified',
      'The e-mail address of this account is confirmed already',
      options,
    );
  }
}
