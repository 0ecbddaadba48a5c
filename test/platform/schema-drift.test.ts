// The `Database` type (src/database.ts, assembled from each capability's table.ts) is written
// by hand beside migrations that are also written by hand; nothing but this test links them.
// It migrates a fresh database, reads information_schema, reads the table interfaces with the
// TypeScript compiler, and reports every difference at once:
// * every table and every column exists on both sides;
// * a column is nullable exactly when its selected type includes `null`;
// * a column with a default may be left out on insert (`Generated<>`, or a `ColumnType` whose
//   insert type includes `undefined` or is `never`), and a column that may be left out has a
//   default — or is nullable, which PostgreSQL fills with null.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/platform/migrations.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface ColumnShape {
  nullable: boolean;
  hasDefault: boolean;
}
/** table → column → shape */
type SchemaShape = Map<string, Map<string, ColumnShape>>;

function compilerOptions(): ts.CompilerOptions {
  const file = path.join(ROOT, 'tsconfig.json');
  const { config } = ts.readConfigFile(file, ts.sys.readFile) as { config: unknown };
  return ts.parseJsonConfigFileContent(config, ts.sys, ROOT).options;
}

/**
 * The tables of interface `name` in `file`, as the compiler sees them. `overrides` supplies
 * in-memory files (by absolute path) so the reader itself can be tested on a known drift.
 */
function readTypes(file: string, name: string, overrides = new Map<string, string>()): SchemaShape {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => overrides.has(f) || fileExists.call(host, f);
  host.readFile = (f) => overrides.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, language, ...rest) => {
    const text = overrides.get(f);
    return text === undefined
      ? getSourceFile.call(host, f, language, ...rest)
      : ts.createSourceFile(f, text, language);
  };
  const program = ts.createProgram([file], options, host);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (source === undefined) throw new Error(`cannot read ${file}`);
  const declaration = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name,
  );
  if (declaration === undefined) throw new Error(`${file} declares no interface ${name}`);

  const includes = (type: ts.Type, flag: ts.TypeFlags): boolean =>
    type.isUnion() ? type.types.some((t) => (t.flags & flag) !== 0) : (type.flags & flag) !== 0;
  const memberType = (type: ts.Type, member: string): ts.Type | undefined => {
    const symbol = type.getProperty(member);
    return symbol === undefined ? undefined : checker.getTypeOfSymbol(symbol);
  };

  const shape: SchemaShape = new Map();
  const database = checker.getTypeAtLocation(declaration);
  for (const table of database.getProperties()) {
    const columns = new Map<string, ColumnShape>();
    for (const column of checker.getTypeOfSymbol(table).getProperties()) {
      const type = checker.getTypeOfSymbol(column);
      // Kysely's ColumnType<S, I, U> (and Generated<S>, an alias of it) is an object with
      // phantom __select__/__insert__/__update__ members; a plain type is all three at once.
      const selected = memberType(type, '__select__') ?? type;
      const inserted = memberType(type, '__insert__') ?? type;
      columns.set(column.name, {
        nullable: includes(selected, ts.TypeFlags.Null),
        hasDefault:
          (inserted.flags & ts.TypeFlags.Never) !== 0 || includes(inserted, ts.TypeFlags.Undefined),
      });
    }
    shape.set(table.name, columns);
  }
  return shape;
}

/** Tables and columns of the current schema, partitions left out (they mirror their parent). */
async function readSchema(db: Kysely<unknown>): Promise<SchemaShape> {
  const { rows } = await sql<{
    table_name: string;
    column_name: string;
    is_nullable: 'YES' | 'NO';
    has_default: boolean;
  }>`
    select c.table_name, c.column_name, c.is_nullable,
           (c.column_default is not null or c.is_identity = 'YES' or c.is_generated = 'ALWAYS')
             as has_default
      from information_schema.columns c
      join pg_catalog.pg_class k
        on k.relname = c.table_name
       and k.relnamespace = to_regnamespace(c.table_schema)
     where c.table_schema = current_schema()
       and not k.relispartition
       and c.table_name not in ('kysely_migration', 'kysely_migration_lock')
     order by c.table_name, c.ordinal_position`.execute(db);
  const shape: SchemaShape = new Map();
  for (const row of rows) {
    let columns = shape.get(row.table_name);
    if (columns === undefined) shape.set(row.table_name, (columns = new Map()));
    columns.set(row.column_name, {
      nullable: row.is_nullable === 'YES',
      hasDefault: row.has_default,
    });
  }
  return shape;
}

/** Every difference, one line each, sorted: `[]` when types and schema agree. */
function drift(types: SchemaShape, schema: SchemaShape): string[] {
  const out: string[] = [];
  for (const table of new Set([...types.keys(), ...schema.keys()])) {
    const typed = types.get(table);
    const migrated = schema.get(table);
    if (typed === undefined) {
      out.push(`${table}: in the schema, missing from Database`);
      continue;
    }
    if (migrated === undefined) {
      out.push(`${table}: in Database, missing from the schema`);
      continue;
    }
    for (const column of new Set([...typed.keys(), ...migrated.keys()])) {
      const t = typed.get(column);
      const m = migrated.get(column);
      if (t === undefined) out.push(`${table}.${column}: in the schema, missing from the type`);
      else if (m === undefined)
        out.push(`${table}.${column}: in the type, missing from the schema`);
      else {
        if (t.nullable !== m.nullable)
          out.push(
            `${table}.${column}: ${m.nullable ? 'nullable' : 'not null'} in the schema, ` +
              `${t.nullable ? 'includes' : 'excludes'} null in the type`,
          );
        // A nullable column without a default defaults to null, so inserting may omit it.
        if (t.hasDefault ? !(m.hasDefault || m.nullable) : m.hasDefault)
          out.push(
            `${table}.${column}: ${m.hasDefault ? 'has a default' : 'has no default'} in the ` +
              `schema, ${t.hasDefault ? 'optional' : 'required'} on insert in the type`,
          );
      }
    }
  }
  return out.sort();
}

let database: TestDatabase;
let db: Kysely<unknown>;
beforeAll(async () => {
  database = await createTestDatabase();
  const handle = await database.open();
  await migrateToLatest(handle.db);
  db = handle.db as unknown as Kysely<unknown>;
});
afterAll(async () => {
  await database.destroy();
});

describe('schema drift', () => {
  it('finds the Database type and the migrated schema in agreement', async () => {
    const types = readTypes(path.join(ROOT, 'src/database.ts'), 'Database');
    const schema = await readSchema(db);
    // Guard against a reader that silently reads nothing: both sides name the core tables.
    for (const shape of [types, schema]) {
      expect([...shape.keys()]).toEqual(
        expect.arrayContaining(['accounts', 'api_keys', 'usage_events', 'audit_log']),
      );
    }
    expect(drift(types, schema)).toEqual([]);
  });

  it('reports each kind of drift, by table and column', async () => {
    await sql`
      create table drift_probe (
        id bigint generated always as identity,
        name text not null,
        note text,
        label text not null,
        remark text,
        created_at timestamptz not null default now(),
        only_in_sql int
      )`.execute(db);
    try {
      // In memory, inside the repository so that 'kysely' resolves as it does for table.ts.
      const file = path.join(ROOT, 'test/platform/drift-probe.virtual.ts');
      const source = `
        import type { ColumnType, Generated } from 'kysely';
        export interface Probe {
          drift_probe: {
            id: string;                                  // has a default: must be Generated
            name: string | null;                         // not null in SQL
            note: string;                                // nullable in SQL
            label: Generated<string>;                    // no default in SQL
            remark: ColumnType<string | null, string | null | undefined, string | null>; // right: null
            created_at: ColumnType<Date, never, never>;  // right
            only_in_type: Generated<number>;
          };
          missing_table: { id: string };
        }`;
      const types = readTypes(file, 'Probe', new Map([[file, source]]));
      const schema = await readSchema(db);
      const found = drift(types, schema).filter(
        (line) => !line.includes(': in the schema, missing from Database'),
      );
      expect(found).toEqual([
        'drift_probe.id: has a default in the schema, required on insert in the type',
        'drift_probe.label: has no default in the schema, optional on insert in the type',
        'drift_probe.name: not null in the schema, includes null in the type',
        'drift_probe.note: nullable in the schema, excludes null in the type',
        'drift_probe.only_in_sql: in the schema, missing from the type',
        'drift_probe.only_in_type: in the type, missing from the schema',
        'missing_table: in Database, missing from the schema',
      ]);
      expect(drift(types, schema)).toContain('accounts: in the schema, missing from Database');
    } finally {
      await sql`drop table drift_probe`.execute(db);
    }
  });
});
