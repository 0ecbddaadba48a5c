// The HTTP listener and graceful shutdown: stop accepting, let in-flight requests finish for
// up to `shutdownTimeoutMs`, then close what is left.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.ts';

export interface ServerOptions {
  host: string;
  port: number;
  shutdownTimeoutMs: number;
  log: Logger;
}

export interface RunningServer {
  server: http.Server;
  /** Actual port (differs from the option when it was 0). */
  port: number;
  /** Stops accepting and resolves when every connection is closed. */
  close(): Promise<void>;
}

export async function startServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void,
  { host, port, shutdownTimeoutMs, log }: ServerOptions,
): Promise<RunningServer> {
  // The listener answers every error itself (platform/http.ts renders them); a rejection
  // reaching this point is a bug. Log it and drop the connection rather than leave the client
  // waiting or the rejection unhandled.
  const listener: http.RequestListener = (req, res) => {
    // Nothing comes back when the answer was sent at once (platform/http.ts's fixed answers).
    handler(req, res)?.catch((error: unknown) => {
      log.error({ err: error }, 'request listener failed');
      res.destroy();
    });
  };
  const server = http.createServer(
    {
      // A slow or idle client must not hold a socket forever (slowloris).
      headersTimeout: 30_000,
      requestTimeout: 0, // long AI jobs and streams through the front door set their own limits
      keepAliveTimeout: 65_000, // longer than common load balancers' 60 s idle timeout
    },
    listener,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    server,
    port: actualPort,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn(
            { shutdownTimeoutMs },
            'closing connections still busy after the shutdown timeout',
          );
          server.closeAllConnections();
        }, shutdownTimeoutMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // Keep-alive connections with no request in flight would otherwise hold close() open.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
