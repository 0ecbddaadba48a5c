// Front-door limits as the capabilities that own them see them: a plan (billing) sets limits
// for its accounts, a key (keys) may override its own, and the gateway's settings are the
// defaults under both. The front door resolves them per request through `LimitSource`, from
// memory: billing's spend view and keys' verifier keep them current by LISTEN/NOTIFY.
import { z } from 'zod';
import type { Principal } from './auth.ts';

/** One subject's limits; null = not set here (the next level down decides). */
export interface LimitSettings {
  /** Requests per second; 0 = unlimited. */
  rate: number | null;
  /** Most requests at once after an idle spell (the token bucket's size). */
  burst: number | null;
  /** Requests in flight; 0 = unlimited. */
  concurrency: number | null;
}

/** A plan's limits: per key, per account (all its keys), per client IP in anonymous mode. */
export interface PlanLimits {
  key: LimitSettings;
  account: LimitSettings;
  anonymous: LimitSettings;
}

export const NO_LIMIT_SETTINGS: LimitSettings = Object.freeze({
  rate: null,
  burst: null,
  concurrency: null,
});

export const NO_PLAN_LIMITS: PlanLimits = Object.freeze({
  key: NO_LIMIT_SETTINGS,
  account: NO_LIMIT_SETTINGS,
  anonymous: NO_LIMIT_SETTINGS,
});

// Bounds: the settings' own (config.ts), so a plan can say anything a setting can.
const MAX_RATE = 1_000_000;
const count = z.number().int().min(0).max(MAX_RATE).nullable().default(null);

/** The JSON shape (body and stored jsonb) of one subject's limits; unknown fields refused. */
export const limitSettingsSchema = z
  .strictObject({ rate: count, burst: count, concurrency: count })
  .refine((s) => s.burst === null || s.burst >= 1, {
    message: 'burst must be at least 1 (a bucket smaller than one request admits nothing)',
    path: ['burst'],
  });

export const planLimitsSchema = z.strictObject({
  key: limitSettingsSchema.default(NO_LIMIT_SETTINGS),
  account: limitSettingsSchema.default(NO_LIMIT_SETTINGS),
  anonymous: limitSettingsSchema.default(NO_LIMIT_SETTINGS),
});

/**
 * Reads a stored jsonb value; a value this version cannot read (written by a newer one) counts
 * as "nothing set" rather than failing every request of the account.
 */
export function parseLimitSettings(stored: unknown): LimitSettings {
  const parsed = limitSettingsSchema.safeParse(stored ?? {});
  return parsed.success ? parsed.data : NO_LIMIT_SETTINGS;
}

export function parsePlanLimits(stored: unknown): PlanLimits {
  const parsed = planLimitsSchema.safeParse(stored ?? {});
  return parsed.success ? parsed.data : NO_PLAN_LIMITS;
}

/** Whether anything is set (an empty override is stored as `{}`). */
export function hasLimitSettings(settings: LimitSettings): boolean {
  return settings.rate !== null || settings.burst !== null || settings.concurrency !== null;
}

export interface LimitSource {
  /** The limits of the plan in force for `accountId` (its subscription, else the default plan). */
  planLimits(accountId: string): PlanLimits;
  /** The override on the API key behind `principal` (null: none, or not a key). */
  keyOverride(principal: Principal): LimitSettings | null;
}

export const NO_LIMIT_SOURCE: LimitSource = {
  planLimits: () => NO_PLAN_LIMITS,
  keyOverride: () => null,
};
