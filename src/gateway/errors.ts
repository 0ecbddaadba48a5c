// Front door errors, rendered by the platform as {"error": code, "message": …}.
import { AppError } from '../platform/errors.ts';
import type { AppErrorOptions } from '../platform/errors.ts';

/** go-livepeer could not be reached (connection refused, reset, DNS) or broke the response. */
export class BadGateway extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(502, 'BadGateway', message, { expose: true, ...options });
  }
}

/** go-livepeer did not connect or answer within GATEWAY_CONNECT/RESPONSE_TIMEOUT_MS. */
export class GatewayTimeout extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(504, 'GatewayTimeout', message, { expose: true, ...options });
  }
}
