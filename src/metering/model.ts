// The usage event: one billable thing, recorded exactly once.

/** What a quantity counts (LIVEPEER.md §6 lists what go-livepeer bills per pipeline). */
export const UNITS = [
  'pixels',
  'seconds',
  'milliseconds',
  'tokens',
  'characters',
  'requests',
] as const;
export type Unit = (typeof UNITS)[number];

export interface UsageEvent {
  /** Who produced it (`tollhouse/gateway`, `tollhouse/signer`, a collector's URI). */
  source: string;
  /** Unique within `source`; with it, the idempotency key. */
  eventId: string;
  occurredAt: Date;
  /** The payer. */
  accountId: string;
  appId: string | null;
  keyId: string | null;
  clientId: string | null;
  /** An app's end user (external id), when the app bills per user. */
  endUserId: string | null;
  pipeline: string;
  modelId: string | null;
  unit: Unit;
  quantity: bigint;
  feeWei: bigint;
  /** HTTP-like outcome (200, 402, 502 …); null when not applicable. */
  status: number | null;
  latencyMs: number | null;
  attributes: Record<string, unknown>;
}

export interface StoredUsageEvent extends UsageEvent {
  id: bigint;
  recordedAt: Date;
}

export type RecordOutcome = 'accepted' | 'duplicate';
