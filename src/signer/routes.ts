// GET /v1/signer: the signer status for operators (admin scope), the same document
// `tollhouse signer status` prints; GET /v1/signer/funding: the funding journal, paged.
import type { Authenticator } from '../platform/auth.ts';
import { InvalidRequest } from '../platform/errors.ts';
import type { Router } from '../platform/http.ts';
import { defineRoute } from '../platform/http.ts';
import {
  fundingHistoryQuery,
  fundingHistorySchema,
  fundingTransactionJson,
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
}
