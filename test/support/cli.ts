// Runs the command line in this process (src/command-line.ts), as src/main.ts does for the real
// one, with the arguments, settings and clock a test gives: the same result as runCli
// (test/support/process.ts) without starting Node.js and importing the app for every command.
// Files that test the process itself (exit on signals, the database lock, serve) keep runCli.
import { Readable, Writable } from 'node:stream';
import { runCommandLine } from '../../src/command-line.ts';
import type { Clock } from '../../src/platform/clock.ts';
import type { CliResult } from './process.ts';

export interface InProcessOptions {
  /** The time the app reads (default: the wall clock, as a child process would). */
  clock?: Clock;
  /** What the command reads on stdin (default: nothing, as a child given no input). */
  stdin?: string;
}

export async function runCliInProcess(
  args: string[],
  settings: Record<string, string> = {},
  options: InProcessOptions = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = (text: string) => {
    stdout += text;
  };
  const { code } = await runCommandLine(args, {
    // Only the settings given, as childEnv gives a child: nothing of this process's leaks in.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...settings },
    io: {
      out,
      err: (text) => {
        stderr += text;
      },
      stdout: new Writable({
        write(chunk: Buffer | string, _encoding, done) {
          out(chunk.toString());
          done();
        },
      }),
      stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
    },
    clock: options.clock,
  });
  return { code, signal: null, stdout, stderr };
}
