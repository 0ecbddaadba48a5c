import { AppError } from '../platform/errors.ts';
import type { AppErrorOptions } from '../platform/errors.ts';

/** No usable ETH/USD rate: none configured, the feed is unreachable, or its answer is stale. */
export class RateUnavailable extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(503, 'RateUnavailable', message, options);
  }
}

/** A month that cannot be closed (not over yet, or an earlier month is still open). */
export class MonthNotClosable extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(409, 'MonthNotClosable', message, options);
  }
}

/** Stripe is not configured (STRIPE_SECRET_KEY / STRIPE_WEBHOOK_SECRET unset). */
export class StripeNotConfigured extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(503, 'StripeNotConfigured', message, options);
  }
}

/** A webhook whose signature does not verify, or that is too old (a replay). */
export class InvalidSignature extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(400, 'InvalidSignature', message, options);
  }
}
