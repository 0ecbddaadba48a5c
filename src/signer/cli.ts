// The `tollhouse keystore …` and `tollhouse signer …` command groups. Results go to stdout as
// JSON; nothing here ever prints key material or a password.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AppError } from '../platform/errors.ts';
import { SignerStartupError } from './errors.ts';
import { keystoreAddress, parsePrivateKey, writeKeystore } from './keystore.ts';
import { fundingTransactionJson, signerStatusJson } from './schemas.ts';
import type { Signer } from './service.ts';
import type { FundingKind } from './table.ts';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const KEYSTORE_USAGE = [
  'tollhouse keystore create --out FILE --password-file FILE',
  '       tollhouse keystore import --out FILE --password-file FILE   (private key on stdin)',
  '       tollhouse keystore address FILE',
].join('\n');

export const SIGNER_USAGE = [
  'tollhouse signer status',
  '       tollhouse signer fund --deposit WEI --reserve WEI',
  '       tollhouse signer unlock | cancel-unlock | withdraw',
].join('\n');

const print = (io: CliIo, value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

export async function runKeystoreCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === 'address') {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true });
      if (positionals.length !== 1) return usage(io, KEYSTORE_USAGE);
      print(io, { address: keystoreAddress(positionals[0]!) });
      return 0;
    }
    if (sub !== 'create' && sub !== 'import') return usage(io, KEYSTORE_USAGE);
    const { values } = parseArgs({
      args: rest,
      options: { out: { type: 'string' }, 'password-file': { type: 'string' } },
      strict: true,
    });
    if (values.out === undefined || values['password-file'] === undefined) {
      return usage(io, KEYSTORE_USAGE);
    }
    const password = readPasswordFile(values['password-file']);
    const key =
      sub === 'create'
        ? `0x${randomBytes(32).toString('hex')}`
        : parsePrivateKey(await readAll(io.stdin));
    const address = await writeKeystore(values.out, key, password);
    print(io, { address, file: values.out });
    return 0;
  } catch (error) {
    return fail(io, error);
  }
}

export async function runSignerCommand(signer: Signer, args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === 'status') {
      parseArgs({ args: rest, strict: true });
      let readable = signer.enabled;
      if (signer.enabled) {
        await signer.refresh().catch((error: unknown) => {
          readable = false;
          io.stderr.write(`tollhouse: ${(error as Error).message}\n`);
        });
      }
      print(io, signerStatusJson(await signer.status()));
      return readable ? 0 : 1;
    }
    const kinds: Record<string, FundingKind> = {
      fund: 'fund',
      unlock: 'unlock',
      'cancel-unlock': 'cancel_unlock',
      withdraw: 'withdraw',
    };
    const kind = sub === undefined ? undefined : kinds[sub];
    if (kind === undefined) return usage(io, SIGNER_USAGE);
    const { values } = parseArgs({
      args: rest,
      options: kind === 'fund' ? { deposit: { type: 'string' }, reserve: { type: 'string' } } : {},
      strict: true,
    });
    const amounts = values as { deposit?: string; reserve?: string };
    let depositWei = 0n;
    let reserveWei = 0n;
    if (kind === 'fund') {
      depositWei = parseWei('--deposit', amounts.deposit ?? '0');
      reserveWei = parseWei('--reserve', amounts.reserve ?? '0');
      if (depositWei + reserveWei === 0n) {
        throw new ArgumentError('give --deposit and/or --reserve in wei (above zero)');
      }
    }
    const row = await signer.operate({ kind, depositWei, reserveWei, actor: 'cli' });
    print(io, fundingTransactionJson(row));
    return row.status === 'confirmed' ? 0 : 1;
  } catch (error) {
    return fail(io, error);
  }
}

class ArgumentError extends Error {}

function parseWei(flag: string, value: string): bigint {
  if (!/^\d{1,78}$/.test(value))
    throw new ArgumentError(`${flag}: expected an amount in wei (a whole number)`);
  return BigInt(value);
}

function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ArgumentError(
      `cannot read the password file ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
  // Files written by editors and `echo` end with a newline that is not part of the password.
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new ArgumentError(`the password file ${file} is empty`);
  return password;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

function usage(io: CliIo, text: string): number {
  io.stderr.write(`Usage: ${text}\n`);
  return 2;
}

function fail(io: CliIo, error: unknown): number {
  const known =
    error instanceof AppError ||
    error instanceof SignerStartupError ||
    error instanceof ArgumentError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true ||
    (error as { code?: string }).code === 'EEXIST';
  if (!known) throw error;
  const message =
    (error as { code?: string }).code === 'EEXIST'
      ? `${(error as { path?: string }).path ?? 'the file'} already exists; refusing to overwrite a keystore`
      : (error as Error).message;
  io.stderr.write(`tollhouse: ${message}\n`);
  return error instanceof ArgumentError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ? 2
    : 1;
}
