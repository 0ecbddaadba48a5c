// Shared set-up for the keys tests: accounts and keys made through the public interfaces.
import { Writable } from 'node:stream';
import { createLogger } from '../../src/platform/log.ts';
export { bearer, call, issueKey } from '../support/credentials.ts';
export { newAccount } from '../support/fixtures.ts';

export const INVALID = { error: 'Unauthorized', message: 'Invalid API key' };

/** A logger whose JSON lines tests can read. */
export function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line));
      }
      callback();
    },
  });
  return { log: createLogger({ level: 'info', destination: sink }), lines };
}
