// /v1/statements: list, show, and export (CSV or JSON Lines) of closed months' statements.
import type { Context } from 'koa';
import { hasScope } from '../../platform/auth.ts';
import { assertOwnership } from '../../platform/authz.ts';
import { InvalidRequest, NotFound } from '../../platform/errors.ts';
import { defineRoute, guardedRoute } from '../../platform/http.ts';
import type { AppContext, Router } from '../../platform/http.ts';
import { exportStatement } from '../export.ts';
import {
  exportQuery,
  statementList,
  statementParams,
  statementView,
  statementsQuery,
} from '../schemas.ts';
import { ownAccount, ownStatement, principalOf, reader } from './access.ts';
import type { BillingRouteDeps } from './access.ts';
import { ledgerEntryJson, lineJson, statementJson } from './views.ts';

export function statementRoutes(router: Router, deps: BillingRouteDeps): void {
  const { service } = deps;
  const ownedStatement = ownStatement(service);

  async function visibleStatement(ctx: AppContext | Context, id: string) {
    const found = await service.statement(id);
    const principal = principalOf(ctx);
    if (found.statement.accountId !== principal.accountId && !hasScope(principal, 'admin')) {
      // Not 403: another account's statement ids are not confirmed to exist.
      throw new NotFound(`No statement ${id}`);
    }
    return found;
  }

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements',
      access: reader({ 'query.account_id': ownAccount }),
      query: statementsQuery,
      response: statementList,
    },
    async function listStatements({ query, ctx }) {
      const principal = principalOf(ctx);
      const accountId = hasScope(principal, 'admin') ? query.account_id : principal.accountId;
      if (query.cursor !== undefined && !/^stmt_[0-9A-Za-z]{1,64}$/.test(query.cursor)) {
        throw new InvalidRequest('query.cursor: not a cursor returned by this API');
      }
      const page = await service.statements(
        {
          ...(accountId !== undefined ? { accountId } : {}),
          ...(query.month !== undefined ? { month: query.month } : {}),
          ...(query.cursor !== undefined ? { after: query.cursor } : {}),
        },
        query.limit,
      );
      return {
        statements: page.map(statementJson),
        next_cursor: page.length === query.limit ? page[page.length - 1]!.id : null,
      };
    },
  );

  defineRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements/:id',
      access: reader({ 'params.id': ownedStatement }),
      params: statementParams,
      response: statementView,
    },
    async function showStatement({ params, ctx }) {
      const { statement, lines, entries } = await visibleStatement(ctx, params.id);
      return {
        ...statementJson(statement),
        lines: lines.map(lineJson),
        ledger_entries: entries.map(ledgerEntryJson),
      };
    },
  );

  guardedRoute(
    router,
    {
      method: 'get',
      path: '/v1/statements/:id/export',
      access: reader({ 'params.id': ownedStatement }),
    },
    async function exportStatementRoute(ctx) {
      const params = statementParams.safeParse(ctx.params);
      const query = exportQuery.safeParse(ctx.query);
      if (!params.success)
        throw new InvalidRequest(`params.id: ${params.error.issues[0]?.message}`);
      if (!query.success) throw new InvalidRequest(`query.format: expected csv or json`);
      await assertOwnership(principalOf(ctx), reader({ 'params.id': ownedStatement }), {
        params: params.data,
        query: query.data,
        body: undefined,
      });
      const { statement } = await visibleStatement(ctx, params.data.id);
      const format = query.data.format;
      ctx.set(
        'Content-Disposition',
        `attachment; filename="${statement.id}.${format === 'csv' ? 'csv' : 'jsonl'}"`,
      );
      ctx.type =
        format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson';
      ctx.body = exportStatement(deps.db, statement, format);
    },
  );
}
