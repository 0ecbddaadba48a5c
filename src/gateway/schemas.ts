// Wire shapes of /v1/streams and of the go-livepeer webhooks (LIVEPEER.md §5).
import { z } from 'zod';
import type { Stream } from './queries.ts';

export const createStreamBody = z.strictObject({ name: z.string().trim().min(1).max(100) });
export const streamParams = z.object({
  id: z.string().regex(/^str_[0-9A-Za-z]{22}$/, 'expected a stream id (str_…)'),
});

// What a caller sees of a stream: snake_case (house style rule 6), dates as RFC 3339 strings.
export const streamView = z.object({
  id: z.string(),
  account_id: z.string(),
  name: z.string(),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});
export const issuedStream = streamView.extend({ stream_key: z.string() });
export const streamList = z.object({ streams: z.array(streamView) });

/** A stream as /v1/streams shows it. */
export function toStreamView(stream: Stream): z.output<typeof streamView> {
  return {
    id: stream.id,
    account_id: stream.accountId,
    name: stream.name,
    created_at: stream.createdAt.toISOString(),
    revoked_at: stream.revokedAt === null ? null : stream.revokedAt.toISOString(),
  };
}

// go-livepeer's webhook wire shapes below keep go-livepeer's own field names
// (`manifestID`, `streamKey`, `maxPrice`): they are its structs, not tollhouse's API.

// go-livepeer sends more fields than these; unknown ones are ignored, not refused.
export const streamAuthBody = z.looseObject({ url: z.string().min(1).max(4096) });
export const streamAuthReply = z.object({ manifestID: z.string(), streamKey: z.string() });

export const liveAuthBody = z.looseObject({
  stream: z.string().max(4096).optional(),
  stream_key: z.string().max(4096).optional(),
  type: z.string().max(200).optional(),
});
export const liveAuthReply = z.object({ stream_id: z.string() });

export const signerAuthBody = z.looseObject({
  headers: z.record(z.string(), z.union([z.array(z.string()), z.string()])).default({}),
  state: z.unknown().optional(),
});
export const signerAuthReply = z.object({
  status: z.number().int(),
  auth_id: z.string().optional(),
  expiry: z.number().int().optional(),
  reason: z.string().optional(),
  maxPrice: z
    .object({ price: z.string(), currency: z.literal('wei'), unit: z.string() })
    .optional(),
});
