// `tollhouse keys create|list|show|update|revoke|rotate`: the operator's side of key
// management. Results are the API's JSON on stdout (create and rotate include the key, shown
// once). `create --admin --email <address>` bootstraps an operator key on a fresh install: it
// creates the account (an administrator) through identity when no account has that email yet.
import type { z } from 'zod';
import { CliUsageError, parseSubcommand, printJson, shown } from '../platform/cli.ts';
import type { CliCommand, CliContext } from '../platform/cli.ts';
import { LIST_ALL_CAP, collectPages } from '../platform/cursor.ts';
import { NotFound } from '../platform/errors.ts';
import {
  createKeyBody,
  keyId,
  rotateKeyBody,
  toApiKeyView,
  toIssuedKeyView,
  toKeyListView,
  toKeyPatch,
  toNewKeyInput,
  toRotateInput,
  toRotatedKeyView,
  updateKeyBody,
  keyLimitsBody,
} from './schemas.ts';
import { CLI_CALLER } from './service.ts';
import type { KeyService } from './service.ts';

/** What `keys create --email` needs of identity's accounts (app.ts passes identity's). */
export interface AccountDirectory {
  /** The account with this email, or null. */
  findByEmail(email: string): Promise<{ id: string } | null>;
  /** Creates an account; identity checks the email. */
  create(input: {
    email: string;
    password: null;
    name: string;
    isAdmin: boolean;
  }): Promise<{ id: string; email: string }>;
}

export interface KeysCliDeps {
  keyService: KeyService;
  accounts: AccountDirectory;
}

const USAGE = `tollhouse keys <subcommand> [options]

  create  --email <address> | --account <acct_…>  [--name <name>] [--kind backend|browser]
          [--scope <scope>]… [--origin <origin>]… [--resource <name>]… [--app <app_…>]
          [--expires-at <RFC 3339>] [--admin]
          --admin gives the key the admin scope; with --email it creates that account as
          an administrator when it does not exist (first run).
  list    --email <address> | --account <acct_…>
  show    <key_…>
  update  <key_…> [--name …] [--scope …]… [--origin …]… [--resource …]… [--expires-at … | --no-expiry]
  revoke  <key_…>
  rotate  <key_…> [--grace-seconds <n>] [--expires-at <RFC 3339>]
  limits  <key_…> [--rate <n>] [--burst <n>] [--concurrency <n>]
          sets the key's front-door limit override (unset options inherit the plan's);
          with no option, clears it
`;

const OPTIONS = {
  account: { type: 'string' },
  email: { type: 'string' },
  admin: { type: 'boolean' },
  name: { type: 'string' },
  kind: { type: 'string' },
  scope: { type: 'string', multiple: true },
  origin: { type: 'string', multiple: true },
  resource: { type: 'string', multiple: true },
  app: { type: 'string' },
  'expires-at': { type: 'string' },
  'no-expiry': { type: 'boolean' },
  'grace-seconds': { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  concurrency: { type: 'string' },
} as const;

const SUBCOMMAND_NAMES = [
  'create',
  'list',
  'show',
  'update',
  'revoke',
  'rotate',
  'limits',
] as const;
type Subcommand = (typeof SUBCOMMAND_NAMES)[number];
type Input = ReturnType<typeof parseSubcommand<typeof OPTIONS>> & { sub: Subcommand };
type Context = CliContext<KeysCliDeps>;

const SUBCOMMANDS = {
  create: createKey,
  list: listKeys,
  show: showKey,
  update: updateKey,
  revoke: revokeKey,
  rotate: rotateKey,
  limits: setKeyLimits,
} satisfies Record<Subcommand, (input: Input, context: Context) => Promise<number>>;

export const keysCommands: Record<string, CliCommand<KeysCliDeps>> = {
  keys: {
    summary: 'Manage API keys: create, list, show, update, revoke, rotate, limits',
    usage: USAGE,
    run(args, context) {
      const input = parseInput(args);
      return SUBCOMMANDS[input.sub](input, context);
    },
  },
};

function parseInput(args: readonly string[]): Input {
  const parsed = parseSubcommand(args, SUBCOMMAND_NAMES, OPTIONS);
  return { ...parsed, sub: parsed.sub as Subcommand };
}

async function createKey(input: Input, context: Context): Promise<number> {
  const { values } = input;
  noPositionals(input);
  const account = accountOption(input, 'create');
  const { keyService, accounts } = await context.open();
  const accountId =
    account.id ?? (await accountByEmail(accounts, account.email, values.admin === true, context));
  const body = parseOptions(createKeyBody, {
    name: values.name ?? (values.admin ? 'operator' : 'cli'),
    kind: values.kind,
    account_id: accountId,
    app_id: values.app,
    scopes: values.admin ? ['admin', ...(values.scope ?? [])] : values.scope,
    allowed_origins: values.origin,
    allowed_resources: values.resource,
    expires_at: values['expires-at'],
  });
  printJson(context.io, toIssuedKeyView(await keyService.create(CLI_CALLER, toNewKeyInput(body))));
  return 0;
}

async function listKeys(input: Input, context: Context): Promise<number> {
  noPositionals(input);
  const account = accountOption(input, 'list');
  const { keyService, accounts } = await context.open();
  const accountId = account.id ?? (await accountByEmail(accounts, account.email, false, context));
  // The whole list, as before paging; `next_cursor` is non-null only past the cap.
  const all = await collectPages(
    (cursor, limit) => keyService.list(CLI_CALLER, { accountId, limit, cursor }),
    LIST_ALL_CAP,
  );
  printJson(context.io, toKeyListView(all));
  return 0;
}

async function showKey(input: Input, context: Context): Promise<number> {
  const id = existing(keyArgument(input));
  const { keyService } = await context.open();
  printJson(context.io, toApiKeyView(await keyService.show(CLI_CALLER, id)));
  return 0;
}

async function updateKey(input: Input, context: Context): Promise<number> {
  const { values } = input;
  const id = existing(keyArgument(input));
  if (values['no-expiry'] && values['expires-at'] !== undefined) {
    throw new CliUsageError('--expires-at and --no-expiry: give one of them');
  }
  const body = parseOptions(
    updateKeyBody,
    Object.fromEntries(
      Object.entries({
        name: values.name,
        scopes: values.scope,
        allowed_origins: values.origin,
        allowed_resources: values.resource,
        expires_at: values['no-expiry'] ? null : values['expires-at'],
      }).filter(([, v]) => v !== undefined),
    ),
  );
  const { keyService } = await context.open();
  printJson(context.io, toApiKeyView(await keyService.update(CLI_CALLER, id, toKeyPatch(body))));
  return 0;
}

async function setKeyLimits(input: Input, context: Context): Promise<number> {
  const { values } = input;
  const id = existing(keyArgument(input));
  const count = (raw: string | undefined) => (raw === undefined ? null : Number(raw));
  const body = parseOptions(keyLimitsBody, {
    rate: count(values.rate),
    burst: count(values.burst),
    concurrency: count(values.concurrency),
  });
  const { keyService } = await context.open();
  const set = await keyService.setLimits(CLI_CALLER, id, body);
  printJson(context.io, { key_id: id, account_id: set.accountId, override: set.override });
  return 0;
}

async function revokeKey(input: Input, context: Context): Promise<number> {
  const id = existing(keyArgument(input));
  const { keyService } = await context.open();
  printJson(context.io, toApiKeyView(await keyService.revoke(CLI_CALLER, id)));
  return 0;
}

async function rotateKey(input: Input, context: Context): Promise<number> {
  const { values } = input;
  const id = existing(keyArgument(input));
  const grace = values['grace-seconds'];
  if (grace !== undefined && !/^\d{1,9}$/.test(grace)) {
    throw new CliUsageError(`--grace-seconds ${shown(grace)}: expected a whole number of seconds`);
  }
  const body = parseOptions(rotateKeyBody, {
    grace_seconds: grace === undefined ? undefined : Number(grace),
    expires_at: values['expires-at'],
  });
  const { keyService } = await context.open();
  printJson(
    context.io,
    toRotatedKeyView(await keyService.rotate(CLI_CALLER, id, toRotateInput(body))),
  );
  return 0;
}

/** The one positional of show/update/revoke/rotate: present, and not a key's secret. */
function keyArgument(input: Input): string {
  const [id, ...extra] = input.positionals;
  if (id === undefined) throw new CliUsageError(`${input.sub} needs a key id (key_…)`);
  if (extra.length > 0)
    throw new CliUsageError(`${input.sub} takes one key id, not ${input.positionals.length}`);
  // A secret pasted where the id goes must not be echoed back into a terminal's scrollback.
  if (id.startsWith('th_')) {
    throw new CliUsageError(
      `${input.sub} needs the key's id (key_…), not its secret; \`tollhouse keys list\` shows the ids`,
    );
  }
  return id;
}

/** An id that cannot exist is answered as one that does not: "No API key …", as the API does. */
function existing(id: string): string {
  if (!keyId.safeParse(id).success) throw new NotFound(`No API key ${shown(id)}`);
  return id;
}

function noPositionals(input: Input): void {
  if (input.positionals.length > 0) {
    throw new CliUsageError(
      `${input.sub} takes no arguments besides options (got ${shown(input.positionals[0]!)})`,
    );
  }
}

/** --account or --email (exactly one), checked before the database is opened. */
function accountOption(
  input: Input,
  sub: 'create' | 'list',
): { id: string; email?: undefined } | { id?: undefined; email: string } {
  const { account, email, admin } = input.values;
  if (account !== undefined && email !== undefined) {
    throw new CliUsageError('--account and --email: give one of them');
  }
  if (account !== undefined) return { id: account };
  if (email !== undefined) return { email };
  throw new CliUsageError(
    sub === 'create' && admin
      ? 'name the account: --email <address> (created if missing) or --account <acct_…>'
      : 'name the account: --email <address> or --account <acct_…>',
  );
}

/** The account with this email; with `--admin` on create, created (first run) when missing. */
async function accountByEmail(
  accounts: AccountDirectory,
  email: string,
  createAdministrator: boolean,
  context: Context,
): Promise<string> {
  const found = await accounts.findByEmail(email);
  if (found !== null) return found.id;
  if (!createAdministrator) throw new NotFound(`No account has the email ${shown(email)}`);
  const account = await accounts.create({ email, password: null, name: 'Operator', isAdmin: true });
  context.io.err(`created administrator account ${account.id} (${account.email})\n`);
  return account.id;
}

/** The API's own body schema over the options: its messages, named by option (exit 2). */
function parseOptions<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map(
    (issue) => `${optionName(issue.path.join('.'))}: ${issue.message}`,
  );
  throw new CliUsageError(lines.join('; '));
}

const OPTION_OF_FIELD: Record<string, string> = {
  name: '--name',
  kind: '--kind',
  scopes: '--scope',
  account_id: '--account',
  app_id: '--app',
  allowed_origins: '--origin',
  allowed_resources: '--resource',
  expires_at: '--expires-at',
  grace_seconds: '--grace-seconds',
};

function optionName(path: string): string {
  const [field, ...rest] = path.split('.');
  const option = OPTION_OF_FIELD[field ?? ''];
  return option === undefined ? path || 'options' : [option, ...rest].join('.');
}
