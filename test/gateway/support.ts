// Helpers for front door tests: the usage events of one request, tiny real PNG headers and
// multipart bodies built by hand (so the bytes sent are known exactly).
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { sql } from 'kysely';
import type { TestApp } from '../support/app.ts';
import { eventually } from '../support/eventually.ts';

export interface StoredEvent {
  source: string;
  event_id: string;
  account_id: string;
  key_id: string | null;
  pipeline: string;
  model_id: string | null;
  unit: string;
  quantity: string;
  fee_wei: string;
  status: number | null;
  attributes: Record<string, unknown>;
}

/** Flushes the recorder until the request's event is stored (the front door records it when
 * the response closes, a moment after the client has read it); returns every event for it. */
export async function eventsOf(
  t: TestApp,
  requestId: string,
  expected = 1,
): Promise<StoredEvent[]> {
  return eventually(
    async () => {
      await t.app.metering.recorder.flush();
      const rows = await sql<StoredEvent>`
      select source, event_id, account_id, key_id, pipeline, model_id, unit,
             quantity::text as quantity, fee_wei::text as fee_wei, status, attributes
      from usage_events where attributes->>'request_id' = ${requestId}`.execute(t.app.database.db);
      return rows.rows.length >= expected && rows.rows;
    },
    { what: `${expected} usage event(s) for request ${requestId}` },
  );
}

export async function eventCount(t: TestApp): Promise<number> {
  await t.app.metering.recorder.flush();
  const rows = await sql<{ n: string }>`select count(*)::text as n from usage_events`.execute(
    t.app.database.db,
  );
  return Number(rows.rows[0]!.n);
}

export function requestId(): string {
  return `test-${randomUUID()}`;
}

/** A PNG signature and IHDR chunk: all image-size (and Go's image.DecodeConfig) read. */
export function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const type = Buffer.from('IHDR');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(13);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([type, ihdr])));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    length,
    type,
    ihdr,
    crc,
  ]);
}

export const BOUNDARY = '----tollhouse-test-boundary';

/** A multipart/form-data body: fields first, then one file part. */
export function multipart(
  fields: Record<string, string>,
  file: { name: string; filename: string; type: string; data: Buffer },
): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
      ),
    );
  }
  parts.push(
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: ${file.type}\r\n\r\n`,
    ),
    file.data,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  );
  return Buffer.concat(parts);
}

export const MULTIPART_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
