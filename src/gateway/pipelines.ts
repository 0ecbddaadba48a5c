// The go-livepeer gateway paths the front door serves, and how each is billed (LIVEPEER.md §6;
// go-livepeer server/ai_process.go). Pure: no I/O.
import type { Unit } from '../metering/index.ts';

export type BodyKind = 'json' | 'multipart' | 'any';

export interface Pipeline {
  /** The pipeline name go-livepeer uses, and the `pipeline` of the usage event. */
  name: string;
  /** How the request body is read to find units and the model id. */
  body: BodyKind;
  unit: Unit;
}

/** Batch AI endpoints: POST only, one per path. */
export const BATCH_PIPELINES: readonly Pipeline[] = [
  { name: 'text-to-image', body: 'json', unit: 'pixels' },
  { name: 'image-to-image', body: 'multipart', unit: 'pixels' },
  { name: 'image-to-video', body: 'multipart', unit: 'pixels' },
  { name: 'upscale', body: 'multipart', unit: 'pixels' },
  { name: 'audio-to-text', body: 'multipart', unit: 'milliseconds' },
  { name: 'llm', body: 'json', unit: 'tokens' },
  { name: 'segment-anything-2', body: 'multipart', unit: 'pixels' },
  { name: 'image-to-text', body: 'multipart', unit: 'pixels' },
  { name: 'text-to-speech', body: 'json', unit: 'characters' },
];

/**
 * Live video (`/live/video-to-video/{stream}/start|update|status|whip|whep…`) and BYOC
 * (`/process/request/…`) paths: any method, bodies forwarded untouched (WHIP/WHEP SDP, JSON).
 * They are paid per second through the signer (LIVEPEER.md §2), so the front door meters one
 * `requests` unit at fee 0.
 */
export const LIVE_PREFIXES: readonly { prefix: string; pipeline: Pipeline }[] = [
  {
    prefix: '/live/video-to-video/',
    pipeline: { name: 'live-video-to-video', body: 'any', unit: 'requests' },
  },
  { prefix: '/process/request/', pipeline: { name: 'byoc', body: 'any', unit: 'requests' } },
];

// go-livepeer's defaults when a request leaves a dimension out, as it pays for them
// (server/ai_process.go): submitTextToImage 512×512 and 1 image; submitImageToVideo 1024×576
// and 25 frames.
const TEXT_TO_IMAGE_DEFAULT_SIDE = 512n;
const IMAGE_TO_VIDEO_DEFAULT = { width: 1024n, height: 576n };
const IMAGE_TO_VIDEO_FRAMES = 25n;
// server/ai_process.go submitLLM pays for max_tokens, 256 when the request has none, before
// the answer exists: the network fee is for those, whatever the model then produced.
export const LLM_DEFAULT_MAX_TOKENS = 256n;

/** What the front door learned from the request (and, for some pipelines, the response). */
export interface RequestFacts {
  /** JSON body (JSON pipelines) or form fields (multipart). */
  fields: Record<string, unknown>;
  /** Pixel size of the uploaded image, from its header (multipart image pipelines). */
  image: { width: number; height: number } | null;
  /** Audio length from an /audio-to-text response's last chunk timestamp, in ms. */
  reportedAudioMs: bigint | null;
}

/**
 * Billable units as go-livepeer pays them: the units each submit* function of
 * server/ai_process.go passes to prepareAIPayment. Returns null when the request does not
 * say (an image whose header could not be read): then the event records quantity 0 and
 * `units_unknown: true` so an operator can find it.
 */
export function unitsFor(pipeline: Pipeline, facts: RequestFacts): bigint | null {
  const { fields, image } = facts;
  switch (pipeline.name) {
    case 'text-to-image': {
      const width = positive(fields.width) ?? TEXT_TO_IMAGE_DEFAULT_SIDE;
      const height = positive(fields.height) ?? TEXT_TO_IMAGE_DEFAULT_SIDE;
      return width * height * (positive(fields.num_images_per_prompt) ?? 1n);
    }
    case 'image-to-image': {
      // go-livepeer decodes the input image's size (image.DecodeConfig), like upscale.
      const pixels = imagePixels(image);
      return pixels === null ? null : pixels * (positive(fields.num_images_per_prompt) ?? 1n);
    }
    case 'image-to-video': {
      const width = positive(fields.width) ?? IMAGE_TO_VIDEO_DEFAULT.width;
      const height = positive(fields.height) ?? IMAGE_TO_VIDEO_DEFAULT.height;
      return width * height * IMAGE_TO_VIDEO_FRAMES;
    }
    case 'upscale':
    case 'segment-anything-2':
    case 'image-to-text':
      return imagePixels(image);
    case 'audio-to-text':
      return facts.reportedAudioMs;
    case 'llm':
      // The response's usage.total_tokens is kept as an attribute (front-door.ts), for
      // operators who price customers on actual tokens.
      return positive(fields.max_tokens) ?? LLM_DEFAULT_MAX_TOKENS;
    case 'text-to-speech':
      // Characters as go-livepeer counts them: len() of the Go string, i.e. UTF-8 bytes.
      return typeof fields.text === 'string' ? BigInt(Buffer.byteLength(fields.text)) : 0n;
    default:
      return 1n;
  }
}

function imagePixels(image: RequestFacts['image']): bigint | null {
  return image === null ? null : BigInt(image.width) * BigInt(image.height);
}

/** A positive integer from JSON (number) or a form field (decimal text); else null. */
function positive(value: unknown): bigint | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return BigInt(value);
  if (typeof value === 'string' && /^[1-9]\d{0,15}$/.test(value.trim())) {
    return BigInt(value.trim());
  }
  return null;
}

// `/text-to-image` → its pipeline: one lookup per request (every request is asked, front door
// or not, before Koa's router).
const BATCH_BY_PATH = new Map(BATCH_PIPELINES.map((p) => [`/${p.name}`, p]));

/** The pipeline served at `path`, or null when the front door does not serve it. */
export function pipelineForPath(method: string, path: string): Pipeline | null {
  if (method === 'POST') {
    const batch = BATCH_BY_PATH.get(path);
    if (batch !== undefined) return batch;
  }
  for (const live of LIVE_PREFIXES) {
    if (path.startsWith(live.prefix) && path.length > live.prefix.length) return live.pipeline;
  }
  return null;
}
