// What can go wrong in a console request; rendered as HTML pages by routes.ts (one place).
import { AppError } from '../platform/errors.ts';

/** No session, or the API no longer accepts the session's token: sign in again. */
export class SignInRequired extends AppError {
  constructor() {
    super(401, 'SignInRequired', 'Sign in to continue');
  }
}

/** The form did not come from a console page of this session (CSRF token or Origin). */
export class FormRejected extends AppError {
  /** 403 for a form from elsewhere; 400 for a form whose text breaks the string rule. */
  constructor(message: string, status = 403) {
    super(status, 'FormRejected', message);
  }
}

/** The /v1 API refused a request the page needed (not a problem with a form's values). */
export class ApiRefused extends AppError {
  constructor(status: number, message: string) {
    super(status, 'ApiRefused', message);
  }
}
