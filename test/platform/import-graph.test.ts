// "Dependencies point one way; no cycles" — counting `import type` and `export … from`, which
// the lint plugins that look for cycles skip. A type-level cycle still means a reader cannot
// understand one module without the other; it is how platform/db.ts once tied 68 files
// together. The graph is read with the TypeScript scanner (no type checking), so this is fast.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

type Graph = Map<string, string[]>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** file → the files it imports (relative specifiers only; packages are not ours). */
function importGraph(files: string[]): Graph {
  const known = new Set(files);
  const graph: Graph = new Map();
  for (const file of files) {
    // preProcessFile lists every import, `import type`, re-export and dynamic import().
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((f) => f.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => path.resolve(path.dirname(file), name))
      .filter((target) => known.has(target));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every cycle's members (Tarjan's strongly connected components larger than one file, and
 * files importing themselves). */
function findCycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node))
        cycles.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

describe('import graph of src/', () => {
  it('has no cycles, type-only imports included', () => {
    const files = sourceFiles(SRC);
    const graph = importGraph(files);
    // Guard against a reader that silently finds nothing.
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get(path.join(SRC, 'app.ts'))).toContain(path.join(SRC, 'database.ts'));
    const cycles = findCycles(graph).map((c) => c.map((f) => path.relative(SRC, f)));
    expect(cycles).toEqual([]);
  });

  it('the cycle finder reports a type-level loop and a self-import, and nothing else', () => {
    const graph: Graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'd']],
      ['d', []],
      ['e', ['e']],
      ['f', ['d']],
    ]);
    expect(findCycles(graph)).toEqual([['a', 'b', 'c'], ['e']]);
  });

  it('counts `import type` and `export … from` as edges', () => {
    const { importedFiles } = ts.preProcessFile(
      "import type { A } from './a.ts';\nexport { b } from './b.ts';\nexport type * from './c.ts';",
      true,
      true,
    );
    expect(importedFiles.map((f) => f.fileName)).toEqual(['./a.ts', './b.ts', './c.ts']);
  });
});

// "Services across capabilities, never raw queries": what one capability needs of another's
// tables it asks through a service or a platform port (the Directory, metering's UsageReads),
// so a capability's index.ts exports nothing callable from its queries.ts (types and
// constants are fine).
describe("capabilities' public surface", () => {
  it('no index.ts re-exports a query function', () => {
    const offenders: string[] = [];
    for (const entry of readdirSync(SRC, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === 'platform') continue;
      const index = path.join(SRC, entry.name, 'index.ts');
      let text: string;
      try {
        text = readFileSync(index, 'utf8');
      } catch {
        continue;
      }
      for (const match of text.matchAll(
        /export\s+(type\s+)?\{([^}]*)\}\s+from\s+'\.\/queries\.ts'/g,
      )) {
        if (match[1] !== undefined) continue;
        for (const name of match[2]!.split(',').map((n) =>
          n
            .trim()
            .split(/\s+as\s+/)
            .pop()!,
        )) {
          if (name === '' || name.startsWith('type ') || /^[A-Z][A-Z0-9_]*$/.test(name)) continue;
          offenders.push(`src/${entry.name}/index.ts exports ${name} from queries.ts`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
