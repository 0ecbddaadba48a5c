// The one shape every capability has, as src/app.ts (the composition root) sees it. Each
// `create<Capability>(deps)` takes its own config section and what it uses (database, clock,
// log, metrics, and narrow ports to the capabilities before it), and returns its facade: this
// contract, plus what later capabilities use (keys' verifier, metering's recorder, billing's
// spend gate …). Creating one registers nothing and starts nothing, so `app.ts` decides the
// order: middleware, then routes, then `start` (a serving process only), and `close` in reverse.
import type { Middleware } from 'koa';
import type { Router } from './http.ts';

export interface Capability {
  /** The capability's folder name (`keys`, `billing` …): logs and errors name it. */
  readonly name: string;
  /** Koa middleware that runs before the router, in this order (CORS, the OIDC mount). */
  readonly middleware?: readonly Middleware[];
  /** Registers the capability's HTTP routes; each declares who may call it (platform/authz). */
  routes?(router: Router): void;
  /**
   * Starts background work that only a serving process needs: timers, LISTEN subscriptions,
   * chain polls, scheduled jobs. One-shot commands (`tollhouse keys list`) never call it.
   */
  start?(): Promise<void> | void;
  /** Stops what `start` began and releases what creating took; safe without `start`. */
  close(): Promise<void> | void;
}
