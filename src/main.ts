#!/usr/bin/env node
// The command line: `tollhouse serve`, `tollhouse migrate`, and one sub-command group per
// capability. Every command builds the service through src/app.ts, does its job, and exits.
// Commands print their results to stdout (JSON where a program may read it); logs of
// one-shot commands go to stderr so stdout stays parseable.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createApp } from './app.ts';
import { ConfigError, loadConfig, servingProblems, wantsStackTraces } from './config.ts';
import {
  ACCOUNTS_USAGE,
  APPS_USAGE,
  IDENTITY_USAGE,
  accountsCommand,
  appsCommand,
  identityCommand,
} from './identity/index.ts';
import type { LoadedConfig } from './config.ts';
import { CliUsageError, USAGE_HELP, usageCommand } from './metering/index.ts';
import { KEYS_USAGE, keysCommand } from './keys/index.ts';
import {
  BILLING_USAGE,
  BillingCliError,
  PLANS_USAGE,
  billingCommand,
  plansCommand,
} from './billing/index.ts';
import { DataDirLocked, createDatabase } from './database.ts';
import { AppError } from './platform/errors.ts';
import { createLogger } from './platform/log.ts';
import { listMigrations, migrateToLatest } from './platform/migrations.ts';
import { SealedValueUnreadable } from './platform/secrets.ts';
import { startServer } from './platform/server.ts';
import {
  KEYSTORE_USAGE,
  SIGNER_USAGE,
  SignerStartupError,
  createSigner,
  runKeystoreCommand,
  runSignerCommand,
} from './signer/index.ts';

// Hard ceiling for a graceful shutdown: Docker sends SIGKILL 10 s after SIGTERM.
const SHUTDOWN_DEADLINE_MS = 9_500;

interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'Run the service (migrates the database first)',
    usage: 'tollhouse serve',
    run: serve,
  },
  migrate: {
    summary: 'Apply pending database migrations, or list them with --status',
    usage: 'tollhouse migrate [--status]',
    run: migrate,
  },
  usage: {
    summary: 'Usage totals and retention (show, prune)',
    usage: USAGE_HELP,
    run: (args) =>
      usageCommand(args, {
        open: async () => {
          const app = await openApp();
          return { metering: app.metering.service, close: () => app.close() };
        },
        out: (text) => process.stdout.write(`${text}\n`),
      }),
  },
  keys: {
    summary: 'Manage API keys: create, list, show, update, revoke, rotate',
    usage: KEYS_USAGE,
    run: (args) =>
      keysCommand(args, {
        open: async () => {
          const app = await openApp();
          return { keyService: app.keys.service, database: app.database, close: () => app.close() };
        },
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      }),
  },
  apps: {
    summary: 'Manage OIDC apps (clients): create, list, show, update, disable, rotate-secret',
    usage: APPS_USAGE,
    run: (args) => withApp((app) => appsCommand(app.identity, app.database.db, args, stdio)),
  },
  accounts: {
    summary:
      'Accounts: create (the first operator: --admin), list, show, update, disable, enable, invite, reset-link, verify',
    usage: ACCOUNTS_USAGE,
    run: (args) => withApp((app) => accountsCommand(app.identity, args, stdio)),
  },
  identity: {
    summary: 'OIDC signing keys: rotate-keys publishes a new key and retires the old one',
    usage: IDENTITY_USAGE,
    run: (args) => withApp((app) => identityCommand(app.identity, args, stdio)),
  },
  keystore: {
    summary: 'Create, import or inspect the Ethereum keystore of the payment signer',
    usage: KEYSTORE_USAGE,
    run: (args) => runKeystoreCommand(args, process),
  },
  signer: {
    summary: 'Payment signer: status, fund deposit/reserve, unlock, cancel-unlock, withdraw',
    usage: SIGNER_USAGE,
    run: signer,
  },
  plans: {
    summary: 'Billing plans and subscriptions: list, show, create, subscribe',
    usage: PLANS_USAGE,
    run: (args) => plansCommand(args, billingCli()),
  },
  billing: {
    summary: 'Month close, exports, Stripe sync, credits',
    usage: BILLING_USAGE,
    run: (args) => billingCommand(args, billingCli()),
  },
  help: {
    summary: 'Show this help',
    usage: 'tollhouse help [command]',
    run: async (args) => {
      process.stdout.write(helpText(args[0]));
      return 0;
    },
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function helpText(command?: string): string {
  const one = command === undefined ? undefined : COMMANDS[command];
  if (one !== undefined) {
    return one.usage.startsWith('Usage:')
      ? `${one.summary}\n\n${one.usage}`
      : `${one.summary}\n\nUsage: ${one.usage}\n`;
  }
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return [
    `tollhouse ${version()} — identity, metering, billing and payments for a go-livepeer gateway`,
    '',
    'Usage: tollhouse <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Settings come from the environment; see docs/configuration.md.',
    "Run `tollhouse help <command>` for a command's options.",
    '',
  ].join('\n');
}

/** Loads config or prints the problems and exits: an invalid setup never shows a stack. */
function configOrExit(): LoadedConfig {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG from sysexits.h
    }
    throw error;
  }
}

async function serve(args: string[]): Promise<number> {
  parseArgs({ args, options: {}, strict: true });
  const { config, warnings } = configOrExit();
  const problems = servingProblems(config);
  if (problems.length > 0) {
    process.stderr.write(`${new ConfigError(problems).message}\n`);
    return 78; // EX_CONFIG, as for any other invalid setting
  }
  const log = createLogger({ level: config.log.level });
  for (const warning of warnings) log.warn(warning);
  const app = await createApp({ config, log });
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(app.handler, {
      host: config.http.host,
      port: config.http.port,
      shutdownTimeoutMs: config.http.shutdownTimeoutMs,
      log,
    });
  } catch (error) {
    // A port in use: release the database and background jobs, then fail (main prints it).
    await app.close().catch(() => undefined);
    throw error;
  }
  log.info(
    { port: server.port, publicUrl: config.http.publicUrl, database: app.database.kind },
    'tollhouse is listening',
  );
  // SIGNER_PORT: the remote-signer routes alone, for a gateway on a private network.
  const signerServer =
    config.signer.listen === null
      ? null
      : await startServer(app.signerHandler, {
          ...config.signer.listen,
          shutdownTimeoutMs: config.http.shutdownTimeoutMs,
          log,
        });
  if (signerServer !== null) {
    log.info({ port: signerServer.port }, 'remote signer is listening');
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      log.flush();
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    app.lifecycle.shuttingDown = true;
    Promise.all([server.close(), signerServer?.close()])
      .then(() => app.close())
      .then(
        () => {
          log.info('stopped');
          log.flush(() => process.exit(0));
        },
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          log.flush(() => process.exit(1));
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Keep running until a signal arrives.
  return new Promise<number>(() => {});
}

function billingCli() {
  return {
    open: async () => {
      const app = await openApp();
      return {
        service: app.billing.service,
        stripe: app.billing.stripe,
        db: app.database.db,
        close: () => app.close(),
      };
    },
    out: (text: string) => process.stdout.write(text),
    stdout: process.stdout,
  };
}

/** The service for a one-shot command: logs on stderr so stdout stays parseable. */
async function openApp() {
  const { config, warnings } = configOrExit();
  const log = createLogger({ level: config.log.level, destination: process.stderr });
  for (const warning of warnings) log.warn(warning);
  return createApp({ config, log });
}

const stdio = {
  out: (text: string) => process.stdout.write(text),
  err: (text: string) => process.stderr.write(text),
};

/** Builds the app (migrating first) for a one-shot command, and closes it afterwards. */
async function withApp(run: (app: Awaited<ReturnType<typeof createApp>>) => Promise<number>) {
  const app = await openApp();
  try {
    return await run(app);
  } finally {
    await app.close();
  }
}

async function migrate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { status: { type: 'boolean' } }, strict: true });
  const { config, warnings } = configOrExit();
  const log = createLogger({ level: config.log.level, destination: process.stderr });
  for (const warning of warnings) log.warn(warning);
  const database = await createDatabase({ config: config.database, log });
  try {
    if (values.status) {
      const states = await listMigrations(database.db);
      process.stdout.write(`${JSON.stringify({ migrations: states }, null, 2)}\n`);
    } else {
      const applied = await migrateToLatest(database.db);
      process.stdout.write(`${JSON.stringify({ applied }, null, 2)}\n`);
    }
    return 0;
  } finally {
    await database.close();
  }
}

async function signer(args: string[]): Promise<number> {
  const { config, warnings } = configOrExit();
  const log = createLogger({ level: config.log.level, destination: process.stderr });
  for (const warning of warnings) log.warn(warning);
  const database = await createDatabase({ config: config.database, log });
  try {
    await migrateToLatest(database.db);
    const service = await createSigner({ config: config.signer, db: database.db, log });
    try {
      return await runSignerCommand(service, args, process);
    } finally {
      await service.stop();
    }
  } finally {
    await database.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    process.stdout.write(helpText());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[first];
  if (command === undefined) {
    process.stderr.write(`Unknown command "${first}".\n\n${helpText()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(first));
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const expected = expectedFailure(error);
    if (expected === null) {
      // Not a refusal the command line knows: a bug, so its stack is what a report needs.
      const stack = error instanceof Error ? error.stack : undefined;
      process.stderr.write(`tollhouse: ${stack ?? String(error)}\n`);
    } else {
      process.stderr.write(`tollhouse: ${expected.message}\n`);
      if (wantsStackTraces() && error instanceof Error && error.stack !== undefined) {
        process.stderr.write(`${error.stack}\n`);
      }
    }
    // Exit now rather than when the event loop drains: a failed start can leave handles open
    // (a pool, a listener that never bound), and under a supervisor a process that hangs on
    // after failing looks alive while serving nothing. stderr is synchronous for files, pipes
    // and terminals, so the message is out.
    process.exit(expected?.code ?? 1);
  },
);

/**
 * The one line (and exit status) for a failure an operator can act on: wrong usage (2), a
 * refusal from a service (AppError: unknown account, no ETH/USD rate …), a setup problem
 * (another TOLLHOUSE_SECRET, a locked data folder, an unreachable database, a port in use).
 * Null for anything else.
 */
function expectedFailure(error: unknown): { message: string; code: number } | null {
  const message = error instanceof Error ? error.message : String(error);
  if (
    isArgumentError(error) ||
    error instanceof CliUsageError ||
    error instanceof BillingCliError
  ) {
    return { message, code: 2 };
  }
  if (error instanceof ConfigError) return { message, code: 78 }; // EX_CONFIG
  if (
    error instanceof AppError ||
    error instanceof DataDirLocked ||
    error instanceof SignerStartupError ||
    causedBy(error, SealedValueUnreadable)
  ) {
    return { message, code: 1 };
  }
  const described = describeStartupError(error);
  return described === null ? null : { message: described, code: 1 };
}

/** Whether `error` or an error in its `cause` chain is a `type` (wrappers add context). */
function causedBy(error: unknown, type: new (...args: never[]) => Error): boolean {
  let e: unknown = error;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof type) return true;
    e = (e as Error).cause;
  }
  return false;
}

function isArgumentError(error: unknown): boolean {
  return (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ?? false;
}

/** One line an operator can act on, for the usual start-up failures. */
function describeStartupError(error: unknown): string | null {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT') {
    return `cannot reach the database (${code}): check DATABASE_URL and that PostgreSQL is running`;
  }
  if (code === 'EADDRINUSE') return `the port is already in use: ${message}; set PORT`;
  if (code === 'EACCES') return `permission denied: ${message}`;
  if (code === '28P01' || code === '28000') return `the database refused the login: ${message}`;
  if (code === '3D000') return `the database does not exist: ${message}`;
  return null;
}
