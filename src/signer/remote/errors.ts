// Refusals of the remote-signer protocol. They keep go-livepeer's statuses (400, 480 refresh
// the session, 481 price too high, 482 no tickets needed) and are rendered by ./routes.ts as
// go-livepeer's `{"error":{"message":…}}`, not as the REST API's shape.
import { AppError } from '../../platform/errors.ts';
import type { AppErrorOptions } from '../../platform/errors.ts';

export class RemoteSignerError extends AppError {}

export class BadSignerRequest extends RemoteSignerError {
  constructor(message: string, options?: AppErrorOptions) {
    super(400, 'BadRequest', message, options);
  }
}

/** 480: the gateway refreshes the orchestrator session and retries (go-livepeer HTTPStatusRefreshSession). */
export class RefreshSession extends RemoteSignerError {
  constructor(message: string, orchestratorUrl: string) {
    super(480, 'RefreshSession', message, {
      headers: { 'Livepeer-Orchestrator-URL': orchestratorUrl },
    });
  }
}

/** 481: the orchestrator's price is above a ceiling (go-livepeer HTTPStatusPriceExceeded). */
export class PriceExceeded extends RemoteSignerError {
  constructor(message: string) {
    super(481, 'PriceExceeded', message);
  }
}

/** 482: the existing credit covers this payment (go-livepeer HTTPStatusNoTickets). */
export class NoTicketsNeeded extends RemoteSignerError {
  constructor() {
    super(482, 'NoTickets', 'no tickets');
  }
}

/** A sender check of §3.4 failed: go-livepeer answers 500 with the reason, safe to show. */
export class SenderCheckFailed extends RemoteSignerError {
  constructor(message: string) {
    super(500, 'SenderCheckFailed', message);
  }
}

/** StateID unknown, replayed, or owned by another account. */
export class StaleState extends RemoteSignerError {
  constructor(message: string, status: 400 | 403 = 400) {
    super(status, status === 403 ? 'Forbidden' : 'BadRequest', message);
  }
}

/** 503 with a reason the gateway operator can act on (no keystore, no chain view, no list). */
export class SignerNotReady extends RemoteSignerError {
  constructor(message: string) {
    super(503, 'ServiceUnavailable', message);
  }
}
