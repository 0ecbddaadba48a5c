// With an https PUBLIC_URL, the browser pages (sign-in, device code, logout, console) set
// Secure cookies, which cannot be sent on a request tollhouse sees as plain HTTP (the cookies
// library throws, which was a 500 at sign-in). `serve` refuses an https PUBLIC_URL without
// TRUST_PROXY (config.ts servingProblems); this answers the requests that still arrive that
// way — a proxy that does not send X-Forwarded-Proto, or someone bypassing the proxy — with a
// 400 that says what to fix. API and token endpoints set no cookies and are left alone.
import type { Context, Middleware, Next } from 'koa';
import { AppError } from './errors.ts';

const BROWSER_PAGES =
  /^\/(?:console(?:\/|$)|interaction\/|oidc\/(?:auth(?:\/|$)|session\/end|device(?:$|\/(?!auth$))))/;

export class HttpsRequired extends AppError {
  constructor() {
    super(
      400,
      'HttpsRequired',
      'This page must be reached over HTTPS (PUBLIC_URL is https), but the request arrived over plain HTTP. Behind a TLS proxy, set TRUST_PROXY=true and have the proxy send X-Forwarded-Proto: https.',
    );
  }
}

export function httpsPages(publicUrl: string): Middleware {
  const https = publicUrl.startsWith('https:');
  return async function httpsPages(ctx: Context, next: Next) {
    if (https && !ctx.secure && BROWSER_PAGES.test(ctx.path)) throw new HttpsRequired();
    await next();
  };
}
