#!/usr/bin/env node
// The `tollhouse` command (package.json bin, npm start): refuses a Node.js too old to run the
// TypeScript sources with one clear line and exit status 1, then runs src/main.ts.
import { nodeVersionProblem } from './node-version.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem !== null) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
await import('../src/main.ts');
