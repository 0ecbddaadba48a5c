// `npm run docs:authz`: writes docs/authorization.md, the table of who may call each operation,
// from the access declarations the routes register (the same data the guard enforces). The app
// is built on a throwaway embedded database only to register its routes; nothing is served.
// test/platform/authz-matrix.test.ts fails while the committed file differs from this output.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { declaredRoutes, renderAuthorizationTable } from '../src/platform/authz.ts';
import { createLogger } from '../src/platform/log.ts';

export const AUTHORIZATION_DOC = fileURLToPath(
  new URL('../docs/authorization.md', import.meta.url),
);

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollhouse-authz-docs-'));
try {
  const config = parseConfig({
    TOLLHOUSE_DATA_DIR: dataDir,
    TOLLHOUSE_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'silent',
  });
  const app = await createApp({ config, log: createLogger({ level: 'silent' }), start: false });
  try {
    writeFileSync(AUTHORIZATION_DOC, renderAuthorizationTable(declaredRoutes(app.router)));
  } finally {
    await app.close();
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(`wrote ${path.relative(process.cwd(), AUTHORIZATION_DOC)}`);
