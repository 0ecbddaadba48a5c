// Reading just enough of a request body to know what it costs, without holding it.
//
// * JSON pipelines (text-to-image, llm, text-to-speech): the body is small; it is read whole
//   up to GATEWAY_JSON_LIMIT_BYTES (413 beyond), parsed, and the very bytes read are sent on.
// * Multipart pipelines: the bytes stream through to go-livepeer untouched while busboy
//   parses a copy for the small form fields (model_id, width, num_images_per_prompt …) and
//   the first bytes of the uploaded image (its pixel size is in its header). Before
//   forwarding, the body is read only until the first file part begins (at most
//   MULTIPART_PREFIX_LIMIT_BYTES), so fields sent before the file — what curl -F and the
//   SDKs do — are known for the browser-key resource check.
// * Anything else (live video, WHIP/WHEP SDP): forwarded untouched, not parsed.
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { imageSize } from 'image-size';
import { BadRequest, PayloadTooLarge } from '../platform/errors.ts';
import type { BodyKind } from './pipelines.ts';

// Form fields are a few bytes; 64 KiB leaves room for long prompts and refuses nothing real.
const FIELD_LIMIT_BYTES = 64 * 1024;
// Fields must come before this much of the body to be seen before forwarding.
const MULTIPART_PREFIX_LIMIT_BYTES = 1024 * 1024;
// PNG/GIF/WebP sizes are in the first 30 bytes; a JPEG's SOF marker follows its EXIF/ICC
// segments, which stay under 256 KiB in practice (one APP segment is at most 64 KiB).
const IMAGE_HEADER_BYTES = 256 * 1024;

export interface ReadBody {
  /** JSON body or form fields seen so far (multipart keeps filling it while streaming). */
  fields: Record<string, unknown>;
  /** Pixel size of the uploaded image once its header has been read. */
  image(): { width: number; height: number } | null;
  /** Bytes received from the client so far. */
  bytesIn(): number;
  /** What to send to go-livepeer: the buffered bytes, or them followed by the rest. */
  forward: Buffer | AsyncIterable<Buffer> | null;
}

// Not async itself: an async function returning readJson's promise would wait two more
// microtask turns for it, on every proxied JSON request.
export function readRequestBody(
  req: IncomingMessage,
  kind: BodyKind,
  jsonLimitBytes: number,
): Promise<ReadBody> {
  const noBody = req.headers['content-length'] === '0' || !hasBody(req);
  if (kind === 'json') return readJson(req, jsonLimitBytes, noBody);
  return readOther(req, kind, noBody);
}

async function readOther(req: IncomingMessage, kind: BodyKind, noBody: boolean): Promise<ReadBody> {
  if (noBody) return { fields: {}, image: () => null, bytesIn: () => 0, forward: null };
  if (kind === 'multipart') return readMultipart(req);
  let bytes = 0;
  return {
    fields: {},
    image: () => null,
    bytesIn: () => bytes,
    forward: (async function* passThrough() {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        yield chunk;
      }
    })(),
  };
}

function hasBody(req: IncomingMessage): boolean {
  return (
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  );
}

async function readJson(req: IncomingMessage, limit: number, noBody: boolean): Promise<ReadBody> {
  if (noBody) return { fields: {}, image: () => null, bytesIn: () => 0, forward: null };
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const body = await readWhole(req, limit);
  const size = body.length;
  let parsed: unknown;
  try {
    parsed = size === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new BadRequest('Request body is not valid JSON', { cause: error });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BadRequest('Request body must be a JSON object');
  }
  return {
    fields: parsed as Record<string, unknown>,
    image: () => null,
    bytesIn: () => size,
    forward: body,
  };
}

/**
 * The whole body, read with plain stream events: an async iterator over the request costs a
 * promise and an iterator result per chunk, measurable for small JSON bodies.
 */
function readWhole(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Stop reading; what is left is discarded with the connection if the client persists.
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      if (first === null) first = chunk;
      else (chunks ??= [first]).push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks !== null ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () => {
      if (req.readableEnded) return;
      cleanup();
      reject(new BadRequest('The client closed the request before sending its body'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function tooLarge(limit: number): PayloadTooLarge {
  // The rest of the body is not read: the connection closes after the 413 rather than
  // reading (and discarding) what the client still sends.
  return new PayloadTooLarge(`Request body is larger than ${limit} bytes`, {
    headers: { Connection: 'close' },
  });
}

async function readMultipart(req: IncomingMessage): Promise<ReadBody> {
  const fields: Record<string, unknown> = {};
  let image: { width: number; height: number } | null = null;
  let fileStarted = false;
  let parser: busboy.Busboy | null = null;
  try {
    parser = busboy({
      headers: req.headers,
      limits: { fieldSize: FIELD_LIMIT_BYTES, fields: 100, parts: 1_000 },
    });
  } catch {
    // Not multipart (or no boundary): go-livepeer will say what is wrong; nothing to learn.
    parser = null;
  }
  if (parser !== null) {
    parser.on('field', (name, value) => {
      if (!Object.hasOwn(fields, name)) fields[name] = value;
    });
    parser.on('file', (_name, file) => {
      // Only the first file part is measured: every go-livepeer pipeline takes one upload.
      const wanted = !fileStarted;
      fileStarted = true;
      const head: Buffer[] = [];
      let headBytes = 0;
      let measured = !wanted;
      const measure = () => {
        if (measured) return;
        measured = true;
        try {
          const size = imageSize(Buffer.concat(head, headBytes));
          if (size.width > 0 && size.height > 0) image = { width: size.width, height: size.height };
        } catch {
          // Not an image, or its header lies beyond IMAGE_HEADER_BYTES: units unknown.
        }
        head.length = 0;
      };
      // Always drained: an unread part would make busboy buffer the rest of the upload.
      file.on('data', (chunk: Buffer) => {
        if (measured) return;
        head.push(chunk);
        headBytes += chunk.length;
        if (headBytes >= IMAGE_HEADER_BYTES) measure();
      });
      file.on('end', measure);
    });
    // A malformed body is go-livepeer's to refuse; the copy stops being parsed, that is all.
    parser.on('error', () => {
      parser = null;
    });
  }
  const feed = (chunk: Buffer) => {
    if (parser === null) return;
    try {
      parser.write(chunk);
    } catch {
      parser = null;
    }
  };

  const iterator = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const prefix: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  while (!fileStarted && bytes < MULTIPART_PREFIX_LIMIT_BYTES && parser !== null) {
    const next = await iterator.next();
    if (next.done === true) {
      ended = true;
      break;
    }
    bytes += next.value.length;
    prefix.push(next.value);
    feed(next.value);
  }
  if (ended) parser?.end();

  return {
    fields,
    image: () => image,
    bytesIn: () => bytes,
    forward: (async function* forward() {
      yield* prefix;
      prefix.length = 0;
      if (ended) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) break;
        bytes += next.value.length;
        feed(next.value);
        yield next.value;
      }
      parser?.end();
    })(),
  };
}
