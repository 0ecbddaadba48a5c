// Tables of upstream sign-in (issue #18 item 3), apart from table.ts so the sign-in flow's
// other changes never touch the same lines.
import type { Selectable } from 'kysely';

export interface AccountIdentitiesTable {
  id: string;
  provider: string;
  subject: string;
  account_id: string;
  email: string | null;
  linked_at: Date;
  last_used_at: Date | null;
}

export type AccountIdentityRow = Selectable<AccountIdentitiesTable>;

export interface UpstreamFlowsTable {
  state_hash: string;
  provider: string;
  purpose: 'login' | 'link';
  interaction_uid: string | null;
  account_id: string | null;
  code_verifier: string;
  nonce: string;
  created_at: Date;
  expires_at: Date;
  started_at: Date | null;
  used_at: Date | null;
}

export type UpstreamFlowRow = Selectable<UpstreamFlowsTable>;
