// Counts the bytes of a go-livepeer response on their way to the client and notices what it
// reports about usage, without holding the response:
// * /llm JSON: `usage.total_tokens`; /llm SSE (`stream: true`): the `usage` object of the
//   chunk that carries it (go-livepeer sends it with the last chunk, before `data: [DONE]`);
// * /audio-to-text JSON: the end timestamp of the last chunk, as the audio's duration (the
//   front door cannot know the duration without decoding the upload; docs/front-door.md explains).
// JSON responses of /llm and /audio-to-text are a few KB; beyond 1 MiB we stop looking.
const JSON_CAPTURE_LIMIT_BYTES = 1024 * 1024;
// One SSE line longer than this is not a usage chunk worth parsing.
const SSE_LINE_LIMIT_BYTES = 256 * 1024;

export interface ResponseFacts {
  bytes: number;
  totalTokens: bigint | null;
  audioMs: bigint | null;
}

export type Sniff = 'llm' | 'audio' | null;

/**
 * Watches the chunks of one response as the front door writes them to the client (a plain
 * observer, not a stream: no extra stream and no extra hop per chunk).
 */
export interface ResponseMeter {
  write(chunk: Buffer): void;
  /** The response is complete (not called when it was cut off). */
  end(): void;
  facts(): ResponseFacts;
}

export function createResponseMeter(sniff: Sniff, contentType: string): ResponseMeter {
  let bytes = 0;
  let totalTokens: bigint | null = null;
  let audioMs: bigint | null = null;
  const sse = sniff === 'llm' && contentType.startsWith('text/event-stream');
  const json = sniff !== null && !sse && contentType.includes('json');
  const captured: Buffer[] = [];
  let capturedBytes = 0;
  let line = '';

  const onSseText = (text: string) => {
    line += text;
    let newline = line.indexOf('\n');
    while (newline !== -1) {
      inspectSseLine(line.slice(0, newline));
      line = line.slice(newline + 1);
      newline = line.indexOf('\n');
    }
    if (line.length > SSE_LINE_LIMIT_BYTES) line = '';
  };
  const inspectSseLine = (raw: string) => {
    if (!raw.startsWith('data:') || !raw.includes('"usage"')) return;
    const tokens = usageTokens(parseOrNull(raw.slice(5).trim()));
    if (tokens !== null) totalTokens = tokens;
  };
  const decoder = new TextDecoder();

  return {
    write(chunk) {
      bytes += chunk.length;
      if (sse) onSseText(decoder.decode(chunk, { stream: true }));
      else if (json && capturedBytes + chunk.length <= JSON_CAPTURE_LIMIT_BYTES) {
        captured.push(chunk);
        capturedBytes += chunk.length;
      }
    },
    end() {
      if (sse) {
        onSseText(decoder.decode());
        inspectSseLine(line);
      } else if (json) {
        const body = parseOrNull(Buffer.concat(captured, capturedBytes).toString('utf8'));
        if (sniff === 'llm') totalTokens = usageTokens(body);
        else audioMs = lastChunkEndMs(body);
      }
    },
    facts: () => ({ bytes, totalTokens, audioMs }),
  };
}

function parseOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function usageTokens(body: unknown): bigint | null {
  const usage = (body as { usage?: { total_tokens?: unknown } } | null)?.usage;
  const total = usage?.total_tokens;
  return typeof total === 'number' && Number.isSafeInteger(total) && total >= 0
    ? BigInt(total)
    : null;
}

/** go-livepeer's audio-to-text answer: `{"text", "chunks": [{"text", "timestamp": [start, end]}]}`. */
function lastChunkEndMs(body: unknown): bigint | null {
  const chunks = (body as { chunks?: unknown } | null)?.chunks;
  if (!Array.isArray(chunks)) return null;
  let endSeconds = -1;
  for (const chunk of chunks) {
    const stamp = (chunk as { timestamp?: unknown } | null)?.timestamp;
    if (!Array.isArray(stamp)) continue;
    for (const value of stamp) {
      if (typeof value === 'number' && Number.isFinite(value) && value > endSeconds) {
        endSeconds = value;
      }
    }
  }
  // go-livepeer bills audio seconds × 1000; rounded to the nearest millisecond (float noise).
  return endSeconds < 0 ? null : BigInt(Math.round(endSeconds * 1000));
}
