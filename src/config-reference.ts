// The operator's configuration reference (docs/configuration.md) and .env.example, rendered
// from SETTINGS in src/config.ts, so neither can fall behind the settings the service reads.
// `npm run docs:config` writes both; test/platform/config.test.ts fails while either differs.
import { SECTIONS, settingEntries } from './config.ts';
import type { Section, Setting, SettingName } from './config.ts';

const HEADER = `# Configuration

<!-- Generated from SETTINGS in src/config.ts by \`npm run docs:config\`; do not edit by hand. -->

Every setting comes from the environment and is validated at start-up. An invalid setup exits
with status 78 and one message naming every bad setting, never echoing a secret. An empty
variable counts as unset. Settings marked 🔒 are secrets: each may instead be read from a file
named by \`<NAME>_FILE\` (Docker and Kubernetes secrets; a trailing newline is dropped), and
setting both is an error. [\`.env.example\`](../.env.example) lists them all, commented out.
`;

function bySection(): Map<Section, Array<[SettingName, Setting]>> {
  const groups = new Map<Section, Array<[SettingName, Setting]>>();
  for (const section of Object.keys(SECTIONS) as Section[]) groups.set(section, []);
  for (const entry of settingEntries()) groups.get(entry[1].section)!.push(entry);
  return groups;
}

function shownDefault(setting: Setting): string | undefined {
  return setting.default ?? setting.shownDefault;
}

/** A table cell: a pipe would end the cell, a newline the row. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function renderConfigurationReference(): string {
  const parts = [HEADER];
  for (const [section, entries] of bySection()) {
    if (entries.length === 0) continue;
    parts.push(
      `\n## ${SECTIONS[section]}\n\n| setting | default | what it does |\n| --- | --- | --- |\n`,
    );
    for (const [name, setting] of entries) {
      const value = shownDefault(setting);
      const label = setting.secret === true ? `\`${name}\` 🔒` : `\`${name}\``;
      parts.push(
        `| ${label} | ${value === undefined ? '—' : `\`${cell(value)}\``} | ${cell(setting.doc)} |\n`,
      );
    }
  }
  return parts.join('');
}

export function renderEnvExample(): string {
  const parts = [
    '# tollhouse settings. Every one is optional for a local run: `npm start` needs none.\n',
    '# Copy to .env and load it with your process manager, or pass them as environment variables.\n',
    '# Secret settings (marked) can instead be read from a file named by <NAME>_FILE.\n',
    '# Generated from src/config.ts by `npm run docs:config`; docs/configuration.md explains each.\n',
  ];
  for (const [section, entries] of bySection()) {
    if (entries.length === 0) continue;
    parts.push(`\n# --- ${SECTIONS[section]} ---\n`);
    for (const [name, setting] of entries) {
      const secret = setting.secret === true ? ` (secret; or ${name}_FILE)` : '';
      parts.push(`\n# ${setting.doc}${secret}\n# ${name}=${shownDefault(setting) ?? ''}\n`);
    }
  }
  return parts.join('');
}
