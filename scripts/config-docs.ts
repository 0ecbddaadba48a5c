// `npm run docs:config`: writes docs/configuration.md and .env.example from SETTINGS in
// src/config.ts. test/platform/config.test.ts fails while the committed files differ.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderConfigurationReference, renderEnvExample } from '../src/config-reference.ts';

const outputs = [
  ['docs/configuration.md', renderConfigurationReference()],
  ['.env.example', renderEnvExample()],
] as const;

for (const [file, text] of outputs) {
  writeFileSync(fileURLToPath(new URL(`../${file}`, import.meta.url)), text);
  console.log(`wrote ${file}`);
}
