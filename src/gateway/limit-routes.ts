// GET /v1/keys/{id}/limits: the front-door limits in force for a key — its override, else its
// account's plan, else the settings — as the key's owner or an operator may read them. The
// override itself is set through keys (PUT /v1/keys/{id}/limits, operators only), plans'
// limits through billing (PUT /v1/plans/{id}/limits).
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Owner } from '../platform/authz.ts';
import { NotFound } from '../platform/errors.ts';
import { defineRoute } from '../platform/http.ts';
import type { Router } from '../platform/http.ts';
import type { LimitSettings, LimitSource } from '../platform/limits.ts';
import { effectiveRule } from './limits.ts';

/** What the front door needs of keys to answer for one key id. */
export interface KeyLimitsPort {
  owner(keyId: string): Promise<Owner | null>;
  /** The key's account and override (`{}` stored: all null), or null for an unknown key. */
  find(keyId: string): Promise<{ accountId: string; override: LimitSettings } | null>;
}

export interface EffectiveLimitsDeps {
  keys: KeyLimitsPort;
  limits: LimitSource;
  config: Config['gateway'];
  replicas: () => number;
}

const keyParams = z.object({
  id: z.string().regex(/^key_[0-9A-Za-z]{22}$/, 'expected a key id (key_…)'),
});
const count = z.number().int().min(0);
const rule = z.object({ rate: count, burst: count, concurrency: count });
const nullableCount = count.nullable();
export const effectiveLimitsView = z.object({
  key_id: z.string(),
  account_id: z.string(),
  /** Per key (the override, else the plan, else the settings). */
  key: rule,
  /** All the account's keys together (the plan, else the settings). */
  account: rule,
  /** What an operator set on this key (null: inherited). */
  override: z.object({ rate: nullableCount, burst: nullableCount, concurrency: nullableCount }),
  /** Live replicas sharing the limits (each enforces 1/N). */
  replicas: z.number().int().min(1),
});

export function effectiveLimitsRoutes(router: Router, deps: EffectiveLimitsDeps): void {
  const { keys, limits, config } = deps;
  const settings = config.limits;
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/keys/:id/limits',
      params: keyParams,
      response: effectiveLimitsView,
      // As /v1/keys/{id}: the account's own credentials, and operators.
      access: {
        kinds: ['operator', 'account'],
        ids: { 'params.id': { rule: 'own_account', names: 'API key', find: keys.owner } },
      },
    },
    async function showKeyLimits({ params }) {
      const found = await keys.find(params.id);
      if (found === null) throw new NotFound(`No API key ${params.id}`);
      const plan = limits.planLimits(found.accountId);
      return {
        key_id: params.id,
        account_id: found.accountId,
        key: effectiveRule(
          {
            rate: settings.keyRate,
            burst: settings.keyBurst,
            concurrency: settings.keyConcurrency,
          },
          found.override,
          plan.key,
        ),
        account: effectiveRule(
          {
            rate: settings.accountRate,
            burst: settings.accountBurst,
            concurrency: settings.accountConcurrency,
          },
          plan.account,
        ),
        override: found.override,
        replicas: deps.replicas(),
      };
    },
  );
}
