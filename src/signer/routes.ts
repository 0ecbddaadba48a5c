// GET /v1/signer: the signer status for operators (admin scope), the same document
// `tollhouse signer status` prints.
import type { Authenticator } from '../platform/auth.ts';
import { requireAuth } from '../platform/auth.ts';
import type { Router } from '../platform/http.ts';
import { defineRoute } from '../platform/http.ts';
import { signerStatusJson, signerStatusSchema } from './schemas.ts';
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
      before: [requireAuth(deps.authenticator, ['admin'])],
    },
    async function signerStatus({ ctx }) {
      ctx.set('Cache-Control', 'no-store');
      return signerStatusJson(await deps.signer.status());
    },
  );
}
