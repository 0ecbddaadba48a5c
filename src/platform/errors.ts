// One error type for the whole service. Services throw subclasses named for what happened;
// the HTTP layer renders them in exactly one place (platform/http.ts) as
// {"error": code, "message": message}. OAuth endpoints keep oidc-provider's own format.

export interface AppErrorOptions {
  /** Extra fields added to the JSON body (must be safe to show). */
  details?: Record<string, unknown>;
  /** Response headers, e.g. WWW-Authenticate or Retry-After. */
  headers?: Record<string, string>;
  cause?: unknown;
  /** Show the message to the client; default: only below 500 (see `AppError.expose`). */
  expose?: boolean;
}

/**
 * A problem with the setup that the operator can fix, found outside any request (a keystore
 * that will not open, a data folder another process holds): the command line prints its
 * message as one line, without a stack, and exits 1.
 */
export class SetupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  /**
   * False for 5xx unless the thrower says otherwise: the message is logged but the client
   * gets a generic one. Deliberate answers about the service's state (503 not configured,
   * 502/504 from the gateway) are written for clients and shown.
   */
  readonly expose: boolean;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, options: AppErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.expose = options.expose ?? status < 500;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}

export class BadRequest extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(400, 'BadRequest', message, options);
  }
}

/** Input that parsed but broke a schema; `details.issues` lists each problem by location. */
export class InvalidRequest extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(400, 'InvalidRequest', message, options);
  }
}

export class Unauthorized extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(401, 'Unauthorized', message, options);
  }
}

export class Forbidden extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(403, 'Forbidden', message, options);
  }
}

export class NotFound extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(404, 'NotFound', message, options);
  }
}

export class MethodNotAllowed extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(405, 'MethodNotAllowed', message, options);
  }
}

export class Conflict extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(409, 'Conflict', message, options);
  }
}

export class PayloadTooLarge extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(413, 'PayloadTooLarge', message, options);
  }
}

export class UnsupportedMediaType extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(415, 'UnsupportedMediaType', message, options);
  }
}

export class TooManyRequests extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(429, 'TooManyRequests', message, options);
  }
}

export class ServiceUnavailable extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(503, 'ServiceUnavailable', message, { expose: true, ...options });
  }
}
