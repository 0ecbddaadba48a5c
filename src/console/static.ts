// The console's two static files, read once at startup and served with a content hash as ETag.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Router } from '../platform/http.ts';
import { securityHeaders } from './framework.ts';

const FILES: Record<string, string> = {
  'console.css': 'text/css; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
};

export function staticRoutes(router: Router): void {
  const assets = new Map(
    Object.entries(FILES).map(([name, type]) => {
      const body = readFileSync(new URL(`./static/${name}`, import.meta.url));
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      return [name, { body, type, etag }];
    }),
  );
  router.get('/console/static/:file', async function consoleStatic(ctx) {
    const asset = assets.get(ctx.params.file!);
    if (asset === undefined) return;
    securityHeaders(ctx);
    // Revalidated on every load (the ETag makes that a 304): no stale script after an upgrade.
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', asset.etag);
    if (ctx.get('if-none-match') === asset.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  });
}
