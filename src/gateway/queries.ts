// SQL for the streams table.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { NewStreamRow, StreamRow } from './table.ts';

type Db = Kysely<Database>;

export interface Stream {
  id: string;
  accountId: string;
  appId: string | null;
  keyId: string | null;
  clientId: string | null;
  endUserId: string | null;
  name: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export function toStream(row: StreamRow): Stream {
  return {
    id: row.id,
    accountId: row.account_id,
    appId: row.app_id,
    keyId: row.key_id,
    clientId: row.client_id,
    endUserId: row.end_user_id,
    name: row.name,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

export async function insertStream(db: Db, row: NewStreamRow): Promise<Stream> {
  return toStream(
    await db.insertInto('streams').values(row).returningAll().executeTakeFirstOrThrow(),
  );
}

export async function findActiveStreamByKeyHash(db: Db, hash: string): Promise<Stream | null> {
  const row = await db
    .selectFrom('streams')
    .selectAll()
    .where('stream_key_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row === undefined ? null : toStream(row);
}

export async function findActiveStreamById(db: Db, id: string): Promise<Stream | null> {
  const row = await db
    .selectFrom('streams')
    .selectAll()
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row === undefined ? null : toStream(row);
}

export async function listStreamsByAccount(db: Db, accountId: string): Promise<Stream[]> {
  const rows = await db
    .selectFrom('streams')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1000)
    .execute();
  return rows.map(toStream);
}

export async function revokeStreamById(
  db: Db,
  accountId: string,
  id: string,
): Promise<Stream | null> {
  const row = await db
    .updateTable('streams')
    .set({ revoked_at: new Date() })
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toStream(row);
}
