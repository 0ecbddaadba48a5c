// How the console reaches tollhouse: real HTTP to the app's own handler on a private loopback
// listener, with the signed-in user's bearer token — the same /v1 API (and the same OIDC token
// endpoint) any other client uses, through the same authentication, validation and audit. The
// listener is the app's request listener, bound to 127.0.0.1 on an ephemeral port, started on
// first use.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ApiResponse {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- shapes are read per page
  body: any;
}

export interface ApiClient {
  /** A JSON request; the body (if any) is sent as JSON. */
  call(
    token: string | null,
    method: string,
    path: string,
    body?: unknown,
    extraHeaders?: Record<string, string>,
  ): Promise<ApiResponse>;
  /** The raw response (exports are streamed through to the browser). */
  fetch(path: string, init: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export function createApiClient(handler: () => http.RequestListener): ApiClient {
  let listening: Promise<{ server: http.Server; base: string }> | null = null;

  function start() {
    listening ??= new Promise((resolve, reject) => {
      const server = http.createServer(handler());
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        resolve({ server, base: `http://127.0.0.1:${port}` });
      });
    });
    return listening;
  }

  async function doFetch(path: string, init: RequestInit): Promise<Response> {
    const { base } = await start();
    return fetch(`${base}${path}`, { ...init, redirect: 'manual' });
  }

  return {
    fetch: doFetch,
    async call(token, method, path, body, extraHeaders = {}) {
      const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let payload: string | undefined;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const response = await doFetch(path, { method, headers, body: payload });
      const text = await response.text();
      let parsed: unknown = undefined;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = text;
        }
      }
      return { status: response.status, headers: response.headers, body: parsed };
    },
    async close() {
      if (listening === null) return;
      const { server } = await listening;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
