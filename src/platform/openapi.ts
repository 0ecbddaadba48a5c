// Serves the OpenAPI description of the REST API (the file at the repository root, read once).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { guardedRoute } from './http.ts';
import type { Router } from './http.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

export async function loadOpenApi(): Promise<string> {
  return readFile(OPENAPI_FILE, 'utf8');
}

export function openapiRoutes(router: Router, deps: { document: string }): void {
  guardedRoute(
    router,
    { method: 'get', path: '/v1/openapi.yaml', access: { kinds: 'anyone' } },
    function openapiDocument(ctx) {
      ctx.set('Content-Type', 'application/yaml; charset=utf-8');
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.body = deps.document;
    },
  );
}
