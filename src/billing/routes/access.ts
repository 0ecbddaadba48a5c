// What billing's route registrars share: their dependencies, who may call them, and who is
// acting (for the audit log).
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { AuthState, Authenticator } from '../../platform/auth.ts';
import type { Access, IdRule } from '../../platform/authz.ts';
import type { AppContext } from '../../platform/http.ts';
import type { Database } from '../../database.ts';
import type { SpendGate } from '../../platform/spend.ts';
import type { BillingService } from '../service.ts';
import type { StripeSync } from '../stripe.ts';
import type { Prepaid } from '../prepaid.ts';

/** What every billing route registrar is given. */
export interface BillingRouteDeps {
  service: BillingService;
  spend: SpendGate;
  stripe: StripeSync;
  prepaid: Prepaid;
  authenticator: Authenticator;
  db: Kysely<Database>;
}

export const principalOf = (ctx: AppContext | Context) => (ctx.state as AuthState).principal;

export const actorOf = (ctx: AppContext) => ({
  actor: principalOf(ctx).keyId ?? principalOf(ctx).accountId,
  requestId: ctx.state.requestId,
});

export const ownAccount: IdRule = { rule: 'own_account', names: 'account' };

export const ownStatement = (service: BillingService): IdRule => ({
  rule: 'own_account',
  names: 'statement',
  find: async (id) => service.statementOwner(id),
});

/**
 * What an account pays is read by the account's credentials and its apps' backends; an app's
 * end user and a browser key see none of it.
 */
export const reader = (ids?: Access['ids']): Access => ({
  kinds: ['operator', 'account', 'app_client', 'derived'],
  scope: 'billing:read',
  ...(ids === undefined ? {} : { ids }),
});

export const admin: Access = { kinds: ['operator'], scope: 'admin' };

/**
 * What moves the account's own money (Add credit, auto-recharge settings): the account's own
 * credentials (its backend keys and the console) and operators; never an app acting for it.
 */
export const owner = (ids?: Access['ids']): Access => ({
  kinds: ['operator', 'account'],
  scope: 'billing:read',
  ...(ids === undefined ? {} : { ids }),
});
