// "May this principal spend?" — asked by the front door before it forwards a request and by
// the signer before it signs a payment, so a refusal costs nothing. Billing provides the real
// gate (balances, spend caps); without it every principal may spend.
import type { Principal } from './auth.ts';
import { AppError } from './errors.ts';
import type { AppErrorOptions } from './errors.ts';

export class PaymentRequired extends AppError {
  constructor(message: string, options?: AppErrorOptions) {
    super(402, 'PaymentRequired', message, options);
  }
}

export interface SpendGate {
  /** Throws PaymentRequired (402) with the reason when `principal` may not spend now. */
  assertMaySpend(principal: Principal): void | Promise<void>;
}

export const ALLOW_ALL_SPEND: SpendGate = { assertMaySpend() {} };
