// GET /v1/signer: the signer status for operators (admin scope), the same document
// `tollhouse signer status` prints; GET /v1/signer/funding: the funding journal, paged;
// POST /v1/signer/{fund,fund-for,unlock,cancel-unlock,withdraw}: operator transactions.
import { getAddress } from 'ethers';
import type { AuthState, Authenticator } from '../platform/auth.ts';
import { InvalidRequest } from '../platform/errors.ts';
import type { Router } from '../platform/http.ts';
import { defineRoute } from '../platform/http.ts';
import {
  fundingHistoryQuery,
  fundingHistorySchema,
  fundingTransactionJson,
  operationBodies,
  operationPreviewJson,
  operationResponseSchema,
  signerStatusJson,
  signerStatusSchema,
} from './schemas.ts';
import type { Signer } from './service.ts';

export function signerRoutes(
  router: Router,
  deps: { signer: Signer; authenticator: Authenticator },
): void {
  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/signer',
      response: signerStatusSchema,
      access: { kinds: ['operator'], scope: 'admin' },
    },
    async function signerStatus({ ctx }) {
      ctx.set('Cache-Control', 'no-store');
      return signerStatusJson(await deps.signer.status());
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/signer/funding',
      query: fundingHistoryQuery,
      response: fundingHistorySchema,
      access: { kinds: ['operator'], scope: 'admin' },
    },
    async function signerFundingHistory({ query, ctx }) {
      const page = await deps.signer.fundingHistory(query.cursor ?? null, query.limit);
      if (page === null)
        throw new InvalidRequest('query.cursor: not a cursor returned by this API');
      ctx.set('Cache-Control', 'no-store');
      return {
        transactions: page.map(fundingTransactionJson),
        next_cursor: page.length === query.limit ? page[page.length - 1]!.id : null,
      };
    },
  );

  // Operator transactions, in two steps (docs/signer.md, "Operations over the API").
  const operations = [
    ['fund', 'fund'],
    ['fund-for', 'fund'],
    ['unlock', 'unlock'],
    ['cancel-unlock', 'cancel_unlock'],
    ['withdraw', 'withdraw'],
  ] as const;
  for (const [path, kind] of operations) {
    defineRoute(
      router,
      {
        method: 'post',
        path: `/v1/signer/${path}`,
        body: operationBodies[path],
        response: operationResponseSchema,
        access: { kinds: ['operator'], scope: 'admin' },
      },
      async function signerOperation({ body, ctx }) {
        ctx.set('Cache-Control', 'no-store');
        const principal = (ctx.state as AuthState).principal;
        const actor = principal.keyId ?? principal.accountId;
        if (body.confirmation_token !== undefined) {
          const result = await deps.signer.execute(kind, body.confirmation_token, actor);
          return {
            transaction: fundingTransactionJson(result.transaction),
            replayed: result.replayed,
          };
        }
        const amounts = body as {
          deposit_wei?: string;
          reserve_wei?: string;
          beneficiary?: string;
        };
        const depositWei = BigInt(amounts.deposit_wei ?? '0');
        const reserveWei = BigInt(amounts.reserve_wei ?? '0');
        if (kind === 'fund' && depositWei + reserveWei === 0n) {
          throw new InvalidRequest('body: fund needs deposit_wei and/or reserve_wei above zero');
        }
        if (path === 'fund-for' && amounts.beneficiary === undefined) {
          throw new InvalidRequest('body.beneficiary: fund-for needs the address to fund');
        }
        return operationPreviewJson(
          await deps.signer.preview({
            kind,
            depositWei,
            reserveWei,
            beneficiary:
              amounts.beneficiary === undefined
                ? null
                : getAddress(amounts.beneficiary.toLowerCase()),
            actor,
          }),
        );
      },
    );
  }
}
