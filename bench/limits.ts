// Cluster-wide limits (issue #20): their accuracy with 3 replicas, and the CPU they add per
// front-door request against the per-replica limiter they replace, in the same run.
//
//   node bench/limits.ts [--requests 2000000] [--seconds 60]
//
// 1. Accuracy: three limiters (three replicas' memory) on one virtual clock, each enforcing
//    1/3 of a key's limit R, offered 10 × R spread round-robin; admitted ÷ (R × seconds).
//    Also the documented failure modes: all load on one replica (skew), a replica dead until
//    its heartbeat expires. The virtual clock makes these exact and load-independent; the
//    same bound with three real `serve` processes is test/gateway/limits-replicas.test.ts.
// 2. CPU per request, interleaved ABBA (process.cpuUsage): the limit step as it is now (plan
//    and key-override lookups, the cached subjects, 1/N shares, the RateLimit fields) ÷ the
//    per-replica limiter of before (a frozen copy below: the same token bucket and in-flight
//    counter, global rules, subjects cached per principal). Both admit every request (rates
//    high enough never to refuse), so the figure is the admitted path a request pays.
// The heartbeat itself costs one upsert, one count and one delete per replica every
// GATEWAY_REPLICA_HEARTBEAT_MS, whatever the traffic: nothing per request.
import { parseArgs } from 'node:util';
import { createLimiter, effectiveRule, rateLimitHeaders } from '../src/gateway/index.ts';
import type { LimitSubject } from '../src/gateway/index.ts';
import type { Principal } from '../src/platform/auth.ts';
import type { LimitSettings, PlanLimits } from '../src/platform/limits.ts';
import { NO_PLAN_LIMITS } from '../src/platform/limits.ts';
import { startReport } from './report.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000000' },
    seconds: { type: 'string', default: '60' },
  },
});
const REQUESTS = Number(values.requests);
const SECONDS = Number(values.seconds);
const report = startReport('limits');

// ---- 1. Accuracy on a virtual clock ----------------------------------------------------------

function simulate(options: {
  rate: number;
  replicas: number;
  /** Which replica takes request i (of `perSecond` per second). */
  route: (i: number) => number;
  /** The N each replica divides by, at virtual time `t` (ms). */
  live: (t: number) => number;
  /** Whether replica r answers at time t (a dead one takes no requests). */
  alive?: (r: number, t: number) => boolean;
}) {
  let now = 0;
  const limiters = Array.from({ length: options.replicas }, () => createLimiter(() => now));
  const rule = { rate: options.rate, burst: options.rate, concurrency: 0 };
  const subjects: LimitSubject[] = [{ scope: 'key', key: 'k', rule }];
  const offeredPerSecond = options.rate * 10;
  const total = offeredPerSecond * SECONDS;
  let admitted = 0;
  let counted = 0;
  // The first second drains the bursts; admitted counts from then on.
  for (let i = 0; i < total + offeredPerSecond; i++) {
    now = (i * 1000) / offeredPerSecond;
    let r = options.route(i);
    if (options.alive !== undefined && !options.alive(r, now)) r = (r + 1) % options.replicas;
    try {
      limiters[r]!.acquire(subjects, options.live(now)).release();
      if (now >= 1000) admitted++;
    } catch {
      // 429
    }
    if (now >= 1000) counted++;
  }
  void counted;
  return admitted / (options.rate * SECONDS);
}

const R = 30;
const even = simulate({ rate: R, replicas: 3, route: (i) => i % 3, live: () => 3 });
report.target({
  target: 'cluster limit, 3 replicas, load spread evenly: admitted ÷ R',
  ratio: even,
  goal: { op: '<=', limit: 1.1 },
  detail: `R = ${R}/s, offered 10 R for ${SECONDS} s (virtual clock); per-replica limits: 3.00×`,
});
const perReplica = simulate({ rate: R, replicas: 3, route: (i) => i % 3, live: () => 1 });
report.target({
  target: 'per-replica limit (GATEWAY_LIMITS_SCOPE=replica), 3 replicas ÷ R',
  ratio: perReplica,
  goal: null,
  detail: 'the behaviour before issue #20, same load',
});
const skewed = simulate({ rate: R, replicas: 3, route: () => 0, live: () => 3 });
report.target({
  target: 'cluster limit, all load on one replica (skew) ÷ R',
  ratio: skewed,
  goal: null,
  detail: 'under-admits R/N: documented; round-robin avoids it',
});
// Replica 2 dies at 20 s; the survivors count 2 from 26 s (TTL 6 s).
const died = simulate({
  rate: R,
  replicas: 3,
  route: (i) => i % 3,
  live: (t) => (t < 26_000 ? 3 : 2),
  alive: (r, t) => r !== 2 || t < 20_000,
});
report.target({
  target: 'cluster limit, a replica dies at 20 s (TTL 6 s) ÷ R',
  ratio: died,
  goal: { op: '<=', limit: 1.1 },
  detail: `over ${SECONDS} s; between death and expiry the survivors admit 2/3 R`,
});

// ---- 2. CPU per request ------------------------------------------------------------------------

/** The per-replica limiter before issue #20 (src/gateway/limits.ts at main), frozen here. */
function createOldLimiter(now: () => number = () => performance.now()) {
  interface OldRule {
    rate: number;
    concurrency: number;
  }
  interface Entry {
    tokens: number;
    refilledAt: number;
    inFlight: number;
  }
  const entries = new Map<string, Entry>();
  const burst = (rule: OldRule) => rule.rate * 2;
  function entryFor(key: string, rule: OldRule, at: number): Entry {
    let entry = entries.get(key);
    if (entry === undefined) {
      entry = { tokens: burst(rule), refilledAt: at, inFlight: 0 };
      entries.set(key, entry);
    } else if (rule.rate > 0) {
      const elapsedSeconds = (at - entry.refilledAt) / 1000;
      entry.tokens = Math.min(burst(rule), entry.tokens + elapsedSeconds * rule.rate);
      entry.refilledAt = at;
    }
    return entry;
  }
  return {
    acquire(subjects: readonly { scope: string; key: string; rule: OldRule }[]) {
      const at = now();
      const taken: { scope: string; rule: OldRule; entry: Entry }[] = [];
      for (const { scope, key, rule } of subjects) {
        if (rule.rate > 0 || rule.concurrency > 0) {
          taken.push({ scope, rule, entry: entryFor(key, rule, at) });
        }
      }
      for (const { rule, entry } of taken) {
        if (rule.rate > 0 && entry.tokens < 1) throw new Error('429');
        if (rule.concurrency > 0 && entry.inFlight >= rule.concurrency) throw new Error('429');
      }
      for (const { rule, entry } of taken) {
        if (rule.rate > 0) entry.tokens -= 1;
        entry.inFlight++;
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const { entry } of taken) entry.inFlight--;
      };
    },
  };
}

// 1,000 keys of 100 accounts, as the front door sees them: cached principal objects.
const principals: Principal[] = Array.from({ length: 1000 }, (_, i) => ({
  via: 'api_key',
  accountId: `acct_${i % 100}`,
  appId: null,
  keyId: `key_${i}`,
  clientId: null,
  endUserId: null,
  scopes: ['gateway'],
  allowedOrigins: null,
  allowedResources: null,
}));
// Rates that never refuse (the admitted path); every tenth account on a plan, every tenth key
// with an override.
const HIGH = 1e9;
const plan: PlanLimits = {
  ...NO_PLAN_LIMITS,
  key: { rate: HIGH, burst: null, concurrency: 1_000_000 },
};
const planByAccount = new Map<string, PlanLimits>();
for (let a = 0; a < 100; a += 10) planByAccount.set(`acct_${a}`, plan);
const override: LimitSettings = { rate: HIGH, burst: HIGH, concurrency: null };
const overrides = new WeakMap<Principal, LimitSettings>();
principals.forEach((p, i) => i % 10 === 0 && overrides.set(p, override));

const oldLimiter = createOldLimiter();
const oldRules = {
  key: { rate: HIGH, concurrency: 1_000_000 },
  account: { rate: HIGH, concurrency: 1_000_000 },
};
const oldCache = new WeakMap<
  Principal,
  { scope: string; key: string; rule: typeof oldRules.key }[]
>();
function oldStep(principal: Principal) {
  let subjects = oldCache.get(principal);
  if (subjects === undefined) {
    subjects = [
      { scope: 'key', key: `key:${principal.accountId}:${principal.keyId}`, rule: oldRules.key },
      { scope: 'account', key: `acct:${principal.accountId}`, rule: oldRules.account },
    ];
    oldCache.set(principal, subjects);
  }
  oldLimiter.acquire(subjects)();
}

const newLimiter = createLimiter();
const defaults = { rate: HIGH, burst: null, concurrency: 1_000_000 };
interface Cached {
  plan: PlanLimits;
  override: LimitSettings | null;
  subjects: LimitSubject[];
}
const newCache = new WeakMap<Principal, Cached>();
let headerBytes = 0;
// The same steps as front-door.ts's limit(): resolve (cached on the plan's and override's
// identity), acquire with the live replica count, build the RateLimit fields.
function newStep(principal: Principal) {
  const planLimits = planByAccount.get(principal.accountId) ?? NO_PLAN_LIMITS;
  const keyOverride = overrides.get(principal) ?? null;
  let cached = newCache.get(principal);
  if (cached === undefined || cached.plan !== planLimits || cached.override !== keyOverride) {
    cached = {
      plan: planLimits,
      override: keyOverride,
      subjects: [
        {
          scope: 'key',
          key: `key:${principal.accountId}:${principal.keyId}`,
          rule: effectiveRule(defaults, keyOverride, planLimits.key),
        },
        {
          scope: 'account',
          key: `acct:${principal.accountId}`,
          rule: effectiveRule(defaults, planLimits.account),
        },
      ],
    };
    newCache.set(principal, cached);
  }
  const admission = newLimiter.acquire(cached.subjects, 3);
  headerBytes += Object.keys(rateLimitHeaders(admission.state)).length;
  admission.release();
}

function cpuMicros(step: (p: Principal) => void, n: number): number {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) step(principals[i % principals.length]!);
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

// Warm both paths (JIT), then ABBA rounds.
cpuMicros(oldStep, 200_000);
cpuMicros(newStep, 200_000);
let oldTotal = 0;
let newTotal = 0;
const ROUNDS = 4;
for (let round = 0; round < ROUNDS; round++) {
  const n = REQUESTS / (ROUNDS * 2);
  if (round % 2 === 0) {
    oldTotal += cpuMicros(oldStep, n);
    newTotal += cpuMicros(newStep, n);
  } else {
    newTotal += cpuMicros(newStep, n);
    oldTotal += cpuMicros(oldStep, n);
  }
}
const perOld = oldTotal / (REQUESTS / 2);
const perNew = newTotal / (REQUESTS / 2);
report.target({
  target: 'limit step CPU per request, cluster-wide ÷ per-replica limiter',
  ratio: perNew / perOld,
  goal: null,
  detail: `${(perNew * 1000).toFixed(0)} vs ${(perOld * 1000).toFixed(0)} ns; added ${((perNew - perOld) * 1000).toFixed(0)} ns per request (${REQUESTS.toLocaleString('en')} requests, 1,000 keys, ABBA; ${headerBytes > 0 ? 'RateLimit fields built' : ''})`,
});
report.finish();
