// The `tollhouse keystore …` and `tollhouse signer …` command groups. Results go to stdout as
// JSON; nothing here ever prints key material or a password.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getAddress } from 'ethers';
import { CliFailure, CliUsageError, parseSubcommand, printJson, shown } from '../platform/cli.ts';
import type { CliCommand, CliContext } from '../platform/cli.ts';
import { keystoreAddress, parsePrivateKey, writeKeystore } from './keystore.ts';
import { fundingTransactionJson, signerStatusJson } from './schemas.ts';
import type { Signer } from './service.ts';
import type { FundingKind } from './table.ts';

/** What `tollhouse signer …` uses of the signer (app.ts passes its facade). */
export type SignerCliDeps = Pick<Signer, 'enabled' | 'refresh' | 'status' | 'operate'>;

type Context = CliContext<SignerCliDeps>;

const KEYSTORE_USAGE = `tollhouse keystore <subcommand> [options]

  create   --out FILE --password-file FILE
  import   --out FILE --password-file FILE   (the private key on stdin)
  address  FILE
`;

const SIGNER_USAGE = `tollhouse signer <subcommand> [options]

  status
  fund           --deposit WEI --reserve WEI   (either may be left out)
  fund-for       --address ADDRESS --deposit WEI --reserve WEI
                 (fundDepositAndReserveFor: credits another account, e.g. a gateway's own)
  unlock
  cancel-unlock
  withdraw
`;

export const signerCommands: Record<string, CliCommand<SignerCliDeps>> = {
  keystore: {
    summary: 'Create, import or inspect the Ethereum keystore of the payment signer',
    usage: KEYSTORE_USAGE,
    run: keystoreCommand,
  },
  signer: {
    summary:
      'Payment signer: status, fund deposit/reserve (for itself or another account), unlock, cancel-unlock, withdraw',
    usage: SIGNER_USAGE,
    run: signerCommand,
  },
};

const KEYSTORE_OPTIONS = {
  out: { type: 'string' },
  'password-file': { type: 'string' },
} as const;

/** Works on files only: it never opens the database or reads the configuration. */
async function keystoreCommand(args: string[], context: Context): Promise<number> {
  const { sub, values, positionals } = parseSubcommand(
    args,
    ['create', 'import', 'address'],
    KEYSTORE_OPTIONS,
  );
  if (sub === 'address') {
    if (positionals.length !== 1) throw new CliUsageError('address needs one keystore FILE');
    printJson(context.io, { address: keystoreAddress(positionals[0]!) });
    return 0;
  }
  if (positionals.length > 0) {
    throw new CliUsageError(
      `${sub} takes no arguments besides options (got ${shown(positionals[0]!)})`,
    );
  }
  if (values.out === undefined) throw new CliUsageError(`${sub} needs --out FILE`);
  if (values['password-file'] === undefined) {
    throw new CliUsageError(`${sub} needs --password-file FILE`);
  }
  const password = readPasswordFile(values['password-file']);
  const key =
    sub === 'create'
      ? `0x${randomBytes(32).toString('hex')}`
      : parsePrivateKey(await readAll(context.io.stdin));
  try {
    const address = await writeKeystore(values.out, key, password);
    printJson(context.io, { address, file: values.out });
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') {
      throw new CliFailure(`${values.out} already exists; refusing to overwrite a keystore`);
    }
    throw error;
  }
  return 0;
}

const FUNDING_KINDS: Record<string, FundingKind> = {
  fund: 'fund',
  'fund-for': 'fund',
  unlock: 'unlock',
  'cancel-unlock': 'cancel_unlock',
  withdraw: 'withdraw',
};

async function signerCommand(args: string[], context: Context): Promise<number> {
  const { sub, values } = parseSubcommand(
    args,
    ['status', ...Object.keys(FUNDING_KINDS)],
    { deposit: { type: 'string' }, reserve: { type: 'string' }, address: { type: 'string' } },
    false,
  );
  const funds = sub === 'fund' || sub === 'fund-for';
  if (!funds && (values.deposit !== undefined || values.reserve !== undefined)) {
    throw new CliUsageError(`${sub} takes no options (--deposit and --reserve are for fund)`);
  }
  if (sub !== 'fund-for' && values.address !== undefined) {
    throw new CliUsageError(`${sub} takes no --address (it is for fund-for)`);
  }
  if (sub === 'fund-for' && !/^0x[0-9a-fA-F]{40}$/.test(values.address ?? '')) {
    throw new CliUsageError('fund-for needs --address 0x… (the account to fund, 40 hex digits)');
  }
  if (sub === 'status') {
    const signer = await context.open();
    let readable = signer.enabled;
    if (signer.enabled) {
      await signer.refresh().catch((error: unknown) => {
        readable = false;
        context.io.err(`tollhouse signer status: ${(error as Error).message}\n`);
      });
    }
    printJson(context.io, signerStatusJson(await signer.status()));
    return readable ? 0 : 1;
  }
  const kind = FUNDING_KINDS[sub]!;
  let depositWei = 0n;
  let reserveWei = 0n;
  if (kind === 'fund') {
    depositWei = parseWei('--deposit', values.deposit ?? '0');
    reserveWei = parseWei('--reserve', values.reserve ?? '0');
    if (depositWei + reserveWei === 0n) {
      throw new CliUsageError(`${sub} needs --deposit and/or --reserve in wei (above zero)`);
    }
  }
  const signer = await context.open();
  const row = await signer.operate({
    kind,
    depositWei,
    reserveWei,
    actor: 'cli',
    ...(sub === 'fund-for' ? { beneficiary: getAddress(values.address!.toLowerCase()) } : {}),
  });
  printJson(context.io, fundingTransactionJson(row));
  return row.status === 'confirmed' ? 0 : 1;
}

function parseWei(flag: string, value: string): bigint {
  if (!/^\d{1,78}$/.test(value))
    throw new CliUsageError(`${flag} ${shown(value)}: expected an amount in wei (a whole number)`);
  return BigInt(value);
}

function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliUsageError(
      `--password-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
  // Files written by editors and `echo` end with a newline that is not part of the password.
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new CliUsageError(`--password-file: ${file} is empty`);
  return password;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}
