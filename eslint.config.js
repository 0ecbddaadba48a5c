// Lint rules: typescript-eslint's type-aware recommended set, plus the house rules that a
// linter can check: no process.env outside src/config.ts, no console in src/ except main.ts,
// the import boundaries (a capability is reached only through its index.ts; platform imports
// no capability). Import cycles, type-only imports included, are checked by
// test/platform/import-graph.test.ts: the lint plugins that find cycles skip `import type`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const CAPABILITIES = ['billing', 'console', 'gateway', 'identity', 'keys', 'metering', 'signer'];
const CAPABILITY = `(${CAPABILITIES.join('|')})`;

/** A relative import into another capability's folder, other than its index.ts. */
const deepImport = (prefix) => ({
  regex: `^${prefix}${CAPABILITY}/(?!index\\.ts$)`,
  message: 'Reach another capability through its index.ts (export what you need there).',
});

export default tseslint.config(
  { ignores: ['node_modules/**', '.tollhouse/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      // The project service reads tsconfig.json, so every .ts file is linted with its types.
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      // Promises: every one is awaited, returned, or marked `void` on purpose.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Off, with reasons:
      // * require-await: many functions are async to satisfy an async interface (oidc-provider's
      //   adapter, Koa middleware, SpendGate); dropping `async` would turn their throws into
      //   synchronous exceptions for callers that expect a rejection.
      '@typescript-eslint/require-await': 'off',
      // * unbound-method: capabilities are factories returning closures, never classes using
      //   `this`, so passing `service.method` around is how the code is meant to be used.
      '@typescript-eslint/unbound-method': 'off',
      // * no-unsafe-*: `any` enters at typed-less edges on purpose — JSON bodies that zod
      //   parses next, Koa's `next()`, ethers' Result, and the tests' and console's reading of
      //   REST responses (typed views of those belong with the snake_case API work).
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // * no-base-to-string: String(unknown) is used on purpose at the same edges (a protobufjs
      //   Long, oidc-provider's params, a caught error); an assertion to quiet it would itself
      //   be flagged as unnecessary.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  {
    // Boundaries. A capability reaches another only through its index.ts; src/database.ts is
    // the one exception (it reads the table.ts files, see there).
    files: ['src/**/*.ts'],
    ignores: ['src/database.ts', 'src/platform/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [deepImport('(\\./|(\\.\\./)+)')] }],
    },
  },
  {
    // platform is plumbing shared by every capability: it imports none of them, nor the
    // composition root (app.ts, database.ts) or config.ts — what it needs comes as parameters.
    files: ['src/platform/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^\\.\\./${CAPABILITY}/`,
              message: 'platform imports no capability: take what you need as a parameter.',
            },
            {
              regex: '^\\.\\./(app|config|database|main)\\.ts$',
              message: 'platform does not depend on the composition root or config.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and benchmarks use a capability as the rest of the code does: through index.ts.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [deepImport('(\\.\\./)+src/')] }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read settings through src/config.ts.' },
      ],
    },
  },
  {
    // Plain JavaScript (this file, the console's browser script) is outside the TypeScript
    // project: lint it without type information.
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Migrations take Kysely<any>: they are frozen in time and must not import app types.
    files: ['db/migrations/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The console's progressive-enhancement script and identity's passkey script run in
    // browsers.
    files: ['src/console/static/**/*.js', 'src/identity/static/**/*.js'],
    languageOptions: {
      globals: {
        atob: 'readonly',
        btoa: 'readonly',
        document: 'readonly',
        window: 'readonly',
        navigator: 'readonly',
        Element: 'readonly',
        HTMLFormElement: 'readonly',
      },
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts'],
    rules: { 'no-console': 'error' },
  },
);
