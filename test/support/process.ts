// Runs the real command line (`node src/main.ts …`) as a child process, as an operator would.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

// Node's compile cache, shared by every child of the run: a CLI child then loads the sources
// without stripping and compiling them again (about a third of its start-up).
const COMPILE_CACHE = path.join(os.tmpdir(), 'tollhouse-test-compile-cache');

/** A clean environment: only what the child needs plus the settings given. */
export function childEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_COMPILE_CACHE: COMPILE_CACHE,
    ...settings,
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], settings: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env: childEnv(settings),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function serve(port: number, settings: Record<string, string>): ServeProcess {
  const child = spawn(process.execPath, [MAIN, 'serve'], {
    cwd: ROOT,
    env: childEnv({ HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...settings }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

/** Polls GET /readyz until it answers 200, the process exits, or `timeoutMs` passes. */
export async function waitReady(proc: ServeProcess, timeoutMs = 180_000): Promise<void> {
  let exited = false;
  void proc.exited.then(() => (exited = true));
  await eventually(
    async () => {
      if (exited) throw new ServeExited(`serve exited before it was ready:\n${proc.output()}`);
      const response = await fetch(`${proc.url}/readyz`).catch(() => null); // not listening yet
      await response?.arrayBuffer();
      return response?.status === 200;
    },
    {
      timeoutMs,
      intervalMs: 100,
      what: 'serve to be ready',
      stopOn: (e) => e instanceof ServeExited,
    },
  ).catch((error: Error) => {
    throw error instanceof ServeExited ? error : new Error(`${error.message}:\n${proc.output()}`);
  });
}

class ServeExited extends Error {}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
