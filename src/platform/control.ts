// The control socket (issue #18 item 6): in embedded mode only one process may open the
// database, so a `serve` process listens on <TOLLHOUSE_DATA_DIR>/control.sock and a CLI command
// run meanwhile sends it its arguments instead of being refused. The socket file is created
// with mode 0600 inside the data folder (0700): only the OS user running the server can
// connect, the same user who could read the database files anyway.
//
// Protocol: newline-delimited JSON. The client sends {"argv":[…],"cwd":"…"}; the server
// answers {"out":"…"} and {"err":"…"} frames as the command writes, then {"exit":N}.
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { CliIo } from './cli.ts';
import type { Logger } from './log.ts';

export const CONTROL_SOCKET = 'control.sock';
// A request is one command line; anything larger is not the tollhouse CLI.
const MAX_REQUEST_BYTES = 256 * 1024;
// Options whose value is a file the command opens: resolved against the client's folder, since
// the server runs in its own.
const FILE_OPTIONS = new Set(['--password-file', '--out']);

export type ControlRun = (argv: string[], io: CliIo) => Promise<number>;

export function controlSocketPath(dataDir: string): string {
  return path.join(dataDir, CONTROL_SOCKET);
}

export async function startControlServer(input: {
  dataDir: string;
  log: Logger;
  run: ControlRun;
}): Promise<{ close(): Promise<void> }> {
  const file = controlSocketPath(input.dataDir);
  // This process holds the embedded database's lock, so a socket file left here is from a
  // server that died without cleaning up.
  rmSync(file, { force: true });
  const server = net.createServer((socket) => serve(socket, input));
  // The umask makes the socket 0600 from the moment it exists (bind happens inside listen);
  // chmod afterwards repeats it for file systems that ignore the umask on sockets.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(file, 0o600);
  input.log.info({ socket: file }, 'control socket listening');
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(file, { force: true });
          resolve();
        });
      }),
  };
}

function serve(socket: net.Socket, input: { log: Logger; run: ControlRun }): void {
  let buffered = '';
  let started = false;
  const send = (frame: Record<string, unknown>) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(frame)}\n`);
  };
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    if (started) return;
    buffered += chunk;
    if (buffered.length > MAX_REQUEST_BYTES) {
      socket.destroy();
      return;
    }
    const end = buffered.indexOf('\n');
    if (end < 0) return;
    started = true;
    let argv: string[];
    try {
      const request = JSON.parse(buffered.slice(0, end)) as { argv?: unknown };
      if (!Array.isArray(request.argv) || !request.argv.every((a) => typeof a === 'string')) {
        throw new Error('argv');
      }
      argv = request.argv;
    } catch {
      send({ err: 'tollhouse: the control socket expects {"argv":[…]}\n' });
      send({ exit: 2 });
      socket.end();
      return;
    }
    const io: CliIo = {
      out: (text) => send({ out: text }),
      err: (text) => send({ err: text }),
      stdout: new Writable({
        write(data: Buffer | string, _encoding, done) {
          send({ out: data.toString() });
          done();
        },
      }),
      // The client's stdin is not forwarded: a command that reads it sees it empty.
      stdin: Readable.from([]),
    };
    input.log.info({ command: argv[0] ?? null }, 'command over the control socket');
    input.run(argv, io).then(
      (code) => {
        send({ exit: code });
        socket.end();
      },
      (error: unknown) => {
        input.log.error({ err: error }, 'control socket command failed');
        send({ err: 'tollhouse: the command failed in the server; see its log\n' });
        send({ exit: 1 });
        socket.end();
      },
    );
  });
}

/**
 * Runs `argv` in the server listening on `dataDir`'s control socket, writing its output to
 * `io`; its exit status, or null when no server listens there (the caller runs the command
 * itself).
 */
export function forwardToControlServer(
  dataDir: string,
  argv: readonly string[],
  io: Pick<CliIo, 'out' | 'err'>,
  cwd: string = process.cwd(),
): Promise<number | null> {
  const resolved = argv
    .map((arg, i) =>
      i > 0 && FILE_OPTIONS.has(argv[i - 1]!) && arg !== '-' ? path.resolve(cwd, arg) : arg,
    )
    .map((arg) => {
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(0, eq) : '';
      return FILE_OPTIONS.has(name) ? `${name}=${path.resolve(cwd, arg.slice(eq + 1))}` : arg;
    });
  return new Promise((resolve, reject) => {
    let connected = false;
    let exit: number | null = null;
    let buffered = '';
    const socket = net.connect(controlSocketPath(dataDir));
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify({ argv: resolved })}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf('\n')) >= 0) {
        const frame = JSON.parse(buffered.slice(0, end)) as {
          out?: string;
          err?: string;
          exit?: number;
        };
        buffered = buffered.slice(end + 1);
        if (typeof frame.out === 'string') io.out(frame.out);
        if (typeof frame.err === 'string') io.err(frame.err);
        if (typeof frame.exit === 'number') exit = frame.exit;
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // No socket, or one left by a server that is gone: nobody to forward to.
      if (!connected && ['ENOENT', 'ECONNREFUSED', 'ENOTSOCK'].includes(error.code ?? '')) {
        resolve(null);
      } else reject(error);
    });
    socket.on('close', () => {
      if (!connected) return;
      if (exit === null) reject(new Error('the server closed the control socket mid-command'));
      else resolve(exit);
    });
  });
}
