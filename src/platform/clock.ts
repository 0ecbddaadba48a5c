// The time as tollhouse reads it. Every capability takes a `Clock` from the composition root
// instead of reading the wall clock, so a test (or the CI date matrix) can set the date —
// months close, keys expire and grace windows end when the clock says, not when a test sleeps.
// Durations that only measure how long something took (latency, lock waits, timeouts) may
// still use the wall clock; anything that is compared with a stored time goes through here.
// Exception: oidc-provider stamps its own tokens and sessions with the wall clock, so OIDC
// protocol times (iat, exp of access tokens, interaction expiry) follow the wall clock.

/** Now, as a Date. Called on every read; never cached by callers across requests. */
export type Clock = () => Date;

/** The wall clock: what production runs on. */
export const systemClock: Clock = () => new Date();
