// API keys may belong to an OIDC app; the apps table arrived (0010) after api_keys was first
// written, so the reference is added here. Frozen in time: no app imports.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('api_keys')
    .addForeignKeyConstraint('api_keys_app_id_fkey', ['app_id'], 'apps', ['id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_keys').dropConstraint('api_keys_app_id_fkey').execute();
}
