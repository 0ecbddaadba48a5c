// The command line: `tollhouse serve`, `tollhouse migrate`, and each capability's command
// groups (app.ts's COMMANDS). A command builds the service through src/app.ts, does its job,
// and exits. Results go to stdout (JSON a program may read); messages and logs go to stderr.
// One-shot commands are quiet: warnings and errors only, info with --verbose. Exit statuses
// are those of src/platform/cli.ts: 0 done, 1 refused or failed, 2 wrong usage, 78 invalid
// configuration.
//
// Everything a run reads comes in its options (arguments, settings, output, input, clock, the
// process's signals), so src/main.ts runs it for the process and tests run it in-process, many
// times in one worker, without one run's state reaching the next.
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { COMMANDS, createApp } from './app.ts';
import type { App } from './app.ts';
import {
  ConfigError,
  embeddedDataDir,
  loadConfig,
  servingProblems,
  wantsStackTraces,
} from './config.ts';
import type { LoadedConfig } from './config.ts';
import { createDatabase } from './database.ts';
import {
  CliFailure,
  CliUsageError,
  EXIT_CONFIG,
  EXIT_FAILED,
  EXIT_USAGE,
  commandLogLevel,
  isArgumentError,
} from './platform/cli.ts';
import type { CliCommand, CliIo } from './platform/cli.ts';
import type { Clock } from './platform/clock.ts';
import { AppError, SetupError } from './platform/errors.ts';
import { createLogger } from './platform/log.ts';
import type { Logger } from './platform/log.ts';
import { listMigrations, migrateToLatest } from './platform/migrations.ts';
import { SealedValueUnreadable } from './platform/secrets.ts';
import { startServer } from './platform/server.ts';
import { forwardToControlServer, startControlServer } from './platform/control.ts';

// Hard ceiling for a graceful shutdown: Docker sends SIGKILL 10 s after SIGTERM.
const SHUTDOWN_DEADLINE_MS = 9_500;

/** What one run of the command line reads and writes: nothing else, no module state. */
export interface CommandLineOptions {
  /** The settings, read through src/config.ts (default: the process's environment). */
  env?: Record<string, string | undefined>;
  /** stdout and stderr (results, messages and a one-shot command's logs), and stdin. */
  io: CliIo;
  /** The time the app reads (default: the wall clock). */
  clock?: Clock;
  /**
   * The process `serve` runs as: its signals stop it, and it exits when stopped. Only the real
   * process gives it; without it `serve` refuses (a server is not a call that returns).
   */
  process?: Pick<NodeJS.Process, 'on' | 'once' | 'exit'>;
}

/** One run: its options, its global flags and the command being run (for messages). */
interface Run extends CommandLineOptions {
  flags: GlobalFlags;
  command: string | null;
}

/** A command of the command line itself, which needs more than the app a capability's gets. */
interface OwnCommand {
  summary: string;
  usage: string;
  run(args: string[], run: Run): Promise<number>;
}

interface GlobalFlags {
  verbose: boolean;
}

const OWN_COMMANDS: Record<string, OwnCommand> = {
  serve: {
    summary: 'Run the service (migrates the database first)',
    usage: 'tollhouse serve\n',
    run: serve,
  },
  migrate: {
    summary: 'Apply pending database migrations, or list them with --status',
    usage: 'tollhouse migrate [--status]\n',
    run: migrate,
  },
  help: {
    summary: "Show this help, or a command's options",
    usage: 'tollhouse help [command]\n',
    run: async (args, run) => {
      const [name, ...extra] = args;
      if (extra.length > 0 || (name !== undefined && !isCommand(name))) {
        throw new CliUsageError(
          name !== undefined && !isCommand(name)
            ? `no command ${JSON.stringify(name)}; \`tollhouse help\` lists them`
            : 'help takes one command name',
        );
      }
      run.io.out(helpText(name));
      return 0;
    },
  },
};

/** Every command: the command line's own, then each capability's. */
const COMMAND_TABLE: Record<string, { summary: string; usage: string }> = {
  ...pick(OWN_COMMANDS, ['serve', 'migrate']),
  ...COMMANDS,
  help: OWN_COMMANDS.help!,
};

function pick<T>(from: Record<string, T>, names: string[]): Record<string, T> {
  return Object.fromEntries(names.map((name) => [name, from[name]!]));
}

function isCommand(name: string): boolean {
  return Object.hasOwn(COMMAND_TABLE, name);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function helpText(command?: string): string {
  const one = command === undefined ? undefined : COMMAND_TABLE[command];
  if (one !== undefined) return `${one.summary}\n\nUsage: ${one.usage}`;
  const width = Math.max(...Object.keys(COMMAND_TABLE).map((name) => name.length));
  const lines = Object.entries(COMMAND_TABLE).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return [
    `tollhouse ${version()} — identity, metering, billing and payments for a go-livepeer gateway`,
    '',
    'Usage: tollhouse [--verbose] <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Options:',
    '  --verbose  show the logs of one-shot commands (info and above, on stderr)',
    '  --help     show help (also after a command)',
    '  --version  print the version',
    '',
    'Exit status: 0 done, 1 refused or failed, 2 wrong usage, 78 invalid configuration.',
    'Settings come from the environment; see docs/configuration.md.',
    "Run `tollhouse help <command>` for a command's options.",
    '',
  ].join('\n');
}

/** Loads config; an invalid one is a ConfigError, reported without a stack (exit 78). */
function configOf(run: Run): LoadedConfig {
  return loadConfig(run.env);
}

/** stderr as a stream, for the logger of a one-shot command. */
function errStream(io: CliIo): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      io.err(chunk.toString());
      done();
    },
  });
}

/**
 * Configuration and a logger on stderr for a one-shot command: quiet unless --verbose. The
 * configuration's warnings concern a serving process (a generated secret to back up), so a
 * one-shot command shows them only with --verbose.
 */
function oneShotSetup(run: Run): { config: LoadedConfig['config']; log: Logger } {
  const { config, warnings } = configOf(run);
  const log = createLogger({
    level: commandLogLevel(config.log.level, run.flags.verbose),
    destination: errStream(run.io),
  });
  for (const warning of warnings) log.info(warning);
  return { config, log };
}

/** Runs a capability's command: the app is built (migrated, not started) only if it asks. */
async function runCapabilityCommand(
  command: CliCommand<App>,
  args: string[],
  run: Run,
): Promise<number> {
  // Embedded mode with a server running: it holds the database, so it runs the command.
  const dataDir = embeddedDataDir(run.env);
  if (dataDir !== null && run.command !== null) {
    const forwarded = await forwardToControlServer(dataDir, [run.command, ...args], run.io);
    if (forwarded !== null) return forwarded;
  }
  let opened: Promise<App> | null = null;
  try {
    return await command.run(args, {
      io: run.io,
      open: () => {
        opened ??= (async () => {
          const { config, log } = oneShotSetup(run);
          return createApp({ config, log, start: false, clock: run.clock });
        })();
        return opened;
      },
    });
  } finally {
    if (opened !== null) await (await (opened as Promise<App>).catch(() => null))?.close();
  }
}

async function serve(args: string[], run: Run): Promise<number> {
  parseArgs({ args, options: {}, strict: true });
  const host = run.process;
  if (host === undefined) throw new CliFailure('serve runs only as its own process');
  const { config, warnings } = configOf(run);
  const problems = servingProblems(config);
  if (problems.length > 0) {
    run.io.err(`${new ConfigError(problems).message}\n`);
    return EXIT_CONFIG; // as for any other invalid setting
  }
  const log = createLogger({ level: config.log.level });
  for (const warning of warnings) log.warn(warning);
  const app = await createApp({ config, log, clock: run.clock });
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
  // First run: the JSON log line may scroll by or go to a collector; a person who just typed
  // `npm start` reads the terminal.
  const setupLink = app.identity.firstRun.link;
  if (setupLink !== null) {
    run.io.err(
      `\n  No operator yet. Create the first one here (the link works once, for 24 hours):\n\n` +
        `    ${setupLink}\n\n`,
    );
  }
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
  // Embedded mode: CLI commands run meanwhile reach this process instead of being refused by
  // the database lock. A socket that cannot be opened (a data folder path too long for a Unix
  // socket) only costs that convenience.
  const control =
    config.database.url === null
      ? await startControlServer({
          dataDir: config.database.dataDir,
          log,
          run: (argv, commandIo) => runInServer(app, argv, commandIo),
        }).catch((error: unknown) => {
          log.warn(
            { err: error },
            'control socket not available; CLI commands need the server stopped',
          );
          return null;
        })
      : null;

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      host.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      log.flush();
      host.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    app.lifecycle.shuttingDown = true;
    Promise.all([server.close(), signerServer?.close(), control?.close()])
      .then(() => app.close())
      .then(
        () => {
          log.info('stopped');
          log.flush(() => host.exit(0));
        },
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          log.flush(() => host.exit(1));
        },
      );
  };
  host.once('SIGTERM', () => stop('SIGTERM'));
  host.on('SIGINT', () => stop('SIGINT'));
  // Keep running until a signal arrives.
  return new Promise<number>(() => {});
}

async function migrate(args: string[], run: Run): Promise<number> {
  const { values } = parseArgs({ args, options: { status: { type: 'boolean' } }, strict: true });
  const { config, log } = oneShotSetup(run);
  const database = await createDatabase({ config: config.database, log });
  try {
    if (values.status) {
      const states = await listMigrations(database.db);
      run.io.out(`${JSON.stringify({ migrations: states }, null, 2)}\n`);
    } else {
      const applied = await migrateToLatest(database.db);
      run.io.out(`${JSON.stringify({ applied }, null, 2)}\n`);
    }
    return 0;
  } finally {
    await database.close();
  }
}

/**
 * Runs the command line once and answers its exit status. An operator's mistake or a refusal
 * is reported on stderr like any result (`failed` false); `failed` is true for a failure that
 * can leave handles open (a failed start, a bug), which the real process exits on at once.
 */
export async function runCommandLine(
  argv: readonly string[],
  options: CommandLineOptions,
): Promise<{ code: number; failed: boolean }> {
  const run: Run = { ...options, flags: { verbose: false }, command: null };
  try {
    return { code: await dispatch(argv, run), failed: false };
  } catch (error) {
    const expected = expectedFailure(error, run.command);
    if (expected === null) {
      // Not a refusal the command line knows: a bug, so its stack is what a report needs.
      const stack = error instanceof Error ? error.stack : undefined;
      run.io.err(`tollhouse: ${stack ?? String(error)}\n`);
    } else {
      run.io.err(`${printable(expected.message)}\n`);
      // An invalid setup is its list of problems, never a stack.
      const traced = wantsStackTraces(run.env) && !(error instanceof ConfigError);
      if (traced && error instanceof Error && error.stack !== undefined) {
        run.io.err(`${error.stack}\n`);
      }
    }
    return { code: expected?.code ?? EXIT_FAILED, failed: true };
  }
}

async function dispatch(argv: readonly string[], run: Run): Promise<number> {
  const {
    flags,
    rest: [first, ...rest],
  } = globalFlags(argv);
  run.flags = flags;
  const { io } = run;
  if (first === undefined || first === '--help' || first === '-h') {
    (first === undefined ? io.err : io.out)(helpText());
    return first === undefined ? EXIT_USAGE : 0;
  }
  if (first === '--version' || first === '-v') {
    io.out(`${version()}\n`);
    return 0;
  }
  if (!isCommand(first)) {
    io.err(`tollhouse: unknown command ${JSON.stringify(first)}\n\n${helpText()}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(helpText(first));
    return 0;
  }
  run.command = first;
  const own = OWN_COMMANDS[first];
  if (own !== undefined) return own.run(rest, run);
  return runCapabilityCommand(COMMANDS[first]!, rest, run);
}

/** `--verbose` anywhere before a `--` (it is no command's option), and the other arguments. */
function globalFlags(argv: readonly string[]): { flags: GlobalFlags; rest: string[] } {
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  const rest = [...argv.slice(0, end).filter((arg) => arg !== '--verbose'), ...argv.slice(end)];
  return { flags: { verbose: rest.length !== argv.length }, rest };
}

/**
 * The message (and exit status) for a failure an operator can act on: wrong usage (2, naming
 * the command, with where to read its usage), a refusal from a service (AppError: unknown
 * account, no ETH/USD rate …), a setup problem (another TOLLHOUSE_SECRET, a locked data
 * folder, an unreachable database, a port in use). Null for anything else.
 */
function expectedFailure(
  error: unknown,
  current: string | null,
): { message: string; code: number } | null {
  const message = error instanceof Error ? error.message : String(error);
  if (isArgumentError(error) || error instanceof CliUsageError) {
    const command = current === null ? null : COMMAND_TABLE[current];
    const where = current === null ? 'tollhouse' : `tollhouse ${current}`;
    const help =
      error instanceof CliUsageError && error.showUsage && command !== undefined && command !== null
        ? `\n\nUsage: ${command.usage.trimEnd()}`
        : current === null || current === 'help'
          ? ''
          : `\nRun \`tollhouse help ${current}\` for its options.`;
    return { message: `${where}: ${message}${help}`, code: EXIT_USAGE };
  }
  if (error instanceof ConfigError) return { message, code: EXIT_CONFIG };
  if (
    error instanceof AppError ||
    error instanceof CliFailure ||
    error instanceof SetupError ||
    causedBy(error, SealedValueUnreadable)
  ) {
    return { message: `tollhouse: ${message}`, code: EXIT_FAILED };
  }
  const described = describeStartupError(error);
  return described === null ? null : { message: `tollhouse: ${described}`, code: EXIT_FAILED };
}

/** A command sent over the control socket, run against this server's own app. */
async function runInServer(app: App, argv: string[], commandIo: CliIo): Promise<number> {
  const [name, ...args] = argv;
  const command = name === undefined || !Object.hasOwn(COMMANDS, name) ? null : COMMANDS[name]!;
  if (command === null) {
    commandIo.err(
      `tollhouse: the server runs capability commands only, not ${JSON.stringify(name ?? '')}\n`,
    );
    return EXIT_USAGE;
  }
  try {
    return await command.run(args, { io: commandIo, open: () => Promise.resolve(app) });
  } catch (error) {
    const expected = expectedFailure(error, name ?? null);
    if (expected === null) throw error;
    commandIo.err(`${printable(expected.message)}\n`);
    return expected.code;
  }
}

/**
 * A message as it may reach a terminal: a service's message can quote input (an id that does
 * not exist), so control characters other than newlines are escaped, never interpreted.
 */
function printable(message: string): string {
  return message.replace(
    // eslint-disable-next-line no-control-regex -- finding them is the point
    /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
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
