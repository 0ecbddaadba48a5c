// The command line's shared parts: the one shape of a command group, its input and output,
// the one usage error, and the exit statuses every command uses (documented in `tollhouse help`):
//
//   0   done
//   1   refused or failed: the service said no (an unknown account, a month not over), or the
//       operation failed (a transaction reverted, Stripe answered an error)
//   2   wrong usage: an unknown command or option, a missing or malformed argument
//   78  invalid configuration (EX_CONFIG, sysexits.h)
//
// Commands print results on stdout, as JSON a program can read; messages and logs go to stderr.
import { parseArgs } from 'node:util';
import type { ParseArgsOptionsConfig } from 'node:util';
import type { Writable } from 'node:stream';
import type { LogLevel } from './log.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_CONFIG = 78;

/** Wrong usage: exits 2 with the message (and the command's usage when `showUsage`). */
export class CliUsageError extends Error {
  readonly showUsage: boolean;
  constructor(message: string, options: { showUsage?: boolean } = {}) {
    super(message);
    this.name = 'CliUsageError';
    this.showUsage = options.showUsage ?? false;
  }
}

/** Refused or failed for a reason the operator can act on: exits 1 with the message alone. */
export class CliFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliFailure';
  }
}

export interface CliIo {
  /** Text for stdout (results). */
  out(text: string): void;
  /** Text for stderr (notes for the operator). */
  err(text: string): void;
  /** Raw stdout, for exports streamed there. */
  stdout: Writable;
  stdin: NodeJS.ReadableStream;
}

export interface CliContext<Opened> {
  io: CliIo;
  /** Builds what the command works on (the database migrated, the capability created), once;
   * the command line closes it after the command. Call it after checking the arguments, so a
   * typo answers at once without touching the database. */
  open(): Promise<Opened>;
}

/** One command group (`tollhouse keys …`), the same shape for every capability. */
export interface CliCommand<Opened = unknown> {
  /** One line for `tollhouse help`. */
  summary: string;
  /** The full usage text, shown by `tollhouse help <command>` and after a usage error. */
  usage: string;
  run(args: string[], context: CliContext<Opened>): Promise<number>;
}

/** Prints a result as the API would answer it: JSON, two-space indented. */
export function printJson(io: Pick<CliIo, 'out'>, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * The sub-command and its parsed options. An unknown sub-command is a usage error that names
 * the ones there are; node's own option errors (ERR_PARSE_ARGS_*) also exit 2.
 */
export function parseSubcommand<const Options extends ParseArgsOptionsConfig>(
  args: readonly string[],
  subcommands: readonly string[],
  options: Options,
  allowPositionals = true,
) {
  const [sub, ...rest] = args;
  if (sub === undefined || !subcommands.includes(sub)) {
    const given = sub === undefined ? 'no sub-command' : `unknown sub-command ${shown(sub)}`;
    throw new CliUsageError(`${given}; expected one of ${subcommands.join(', ')}`, {
      showUsage: true,
    });
  }
  const parsed = parseArgs({ args: rest, options, strict: true, allowPositionals });
  return { sub, values: parsed.values, positionals: parsed.positionals };
}

/** A user-supplied value inside a message: quoted, control characters escaped, shortened. */
export function shown(value: string): string {
  const text = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(text);
}

/**
 * The log level of a one-shot command: quiet (warnings and errors only) unless `--verbose`,
 * which shows info. LOG_LEVEL still wins when it asks for less (error, silent) or, with
 * --verbose, for more (debug, trace).
 */
export function commandLogLevel(configured: LogLevel, verbose: boolean): LogLevel {
  const order: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  const floor: LogLevel = verbose ? 'info' : 'warn';
  if (verbose) return order.indexOf(configured) < order.indexOf(floor) ? configured : floor;
  return order.indexOf(configured) > order.indexOf(floor) ? configured : floor;
}

/** Whether `error` is node's parseArgs refusing the arguments (an unknown option …). */
export function isArgumentError(error: unknown): boolean {
  return (error as { code?: string } | null)?.code?.startsWith('ERR_PARSE_ARGS') ?? false;
}
