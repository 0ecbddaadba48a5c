// The docs are read on GitHub or in a checkout, so every relative link between them must land:
// on a file that exists and, when it names one, on a heading (or an explicit `<a id>`) there.
// And the repository stands on its own: nothing outside .ci/ points into a `shared` folder
// beside it, which a reader of the repository alone does not have.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.ts';

/** The Markdown a reader follows: the two top-level pages, docs/ and the migrations' README. */
const PAGES = [
  'README.md',
  'BENCHMARKS.md',
  'db/migrations/README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Markdown without fenced code blocks and inline code, where `[x](y)` is not a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Inline links and images: `[text](target)` and `![alt](target "title")`. */
function links(markdown: string): string[] {
  const found: string[] = [];
  for (const match of prose(markdown).matchAll(
    /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g,
  )) {
    found.push(match[1]!);
  }
  return found;
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen, repeats -1, -2. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = match[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const match of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) result.add(match[1]!);
  return result;
}

describe('links between the docs', () => {
  it('finds the pages it checks', () => {
    // A broken PAGES list would make every other assertion here vacuous.
    expect(PAGES).toEqual(expect.arrayContaining(['README.md', 'docs/architecture.md']));
    expect(links(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).length).toBeGreaterThan(10);
  });

  it.each(PAGES)('%s: every relative link reaches an existing file and heading', (page) => {
    const markdown = readFileSync(path.join(ROOT, page), 'utf8');
    const broken: string[] = [];
    for (const target of links(markdown)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: — not ours to check
      const [file, anchor] = target.split('#', 2) as [string, string | undefined];
      const resolved =
        file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
      const absolute = path.join(ROOT, resolved);
      if (!existsSync(absolute)) {
        broken.push(`${target}: no file ${resolved}`);
        continue;
      }
      if (anchor === undefined || !resolved.endsWith('.md') || statSync(absolute).isDirectory()) {
        continue;
      }
      if (!anchors(readFileSync(absolute, 'utf8')).has(decodeURIComponent(anchor))) {
        broken.push(`${target}: no heading #${anchor} in ${resolved}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the repository stands on its own', () => {
  const SHARED = ['..', 'shared'].join('/'); // spelled apart so this file does not match itself
  const SKIP = new Set(['.git', '.ci', 'node_modules', '.tollhouse', 'coverage', 'screenshots']);
  const BINARY = /\.(png|jpe?g|gif|ico|wasm|bin|lock)$/;

  function* files(dir: string): Generator<string> {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (SKIP.has(entry.name)) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) yield* files(full);
      else if (entry.isFile() && !BINARY.test(entry.name)) yield full;
    }
  }

  it(`has no reference to ${SHARED} outside .ci/`, () => {
    const offenders: string[] = [];
    for (const file of files(ROOT)) {
      if (readFileSync(file, 'utf8').includes(SHARED)) offenders.push(path.relative(ROOT, file));
    }
    expect(offenders).toEqual([]);
  });
});
