#!/usr/bin/env node
// The `tollhouse` process: runs the command line (src/command-line.ts) with this process's
// arguments, settings, standard streams and signals, and exits with its status.
import { runCommandLine } from './command-line.ts';

void runCommandLine(process.argv.slice(2), {
  io: {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    stdout: process.stdout,
    stdin: process.stdin,
  },
  process,
}).then(({ code, failed }) => {
  if (failed) {
    // Exit now rather than when the event loop drains: a failed start can leave handles open
    // (a pool, a listener that never bound), and under a supervisor a process that hangs on
    // after failing looks alive while serving nothing. stderr is synchronous for files, pipes
    // and terminals, so the message is out.
    process.exit(code);
  }
  process.exitCode = code;
});
