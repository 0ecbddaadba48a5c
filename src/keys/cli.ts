// `tollhouse keys create|list|show|update|revoke|rotate`: the operator's side of key
// management. Results are JSON on stdout (create and rotate include the key, shown once).
// `create --admin --email <address>` bootstraps an operator key on a fresh install: it creates
// the account (is_admin) when no account has that email yet.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { findAccountByEmail, insertAccount } from '../identity/index.ts';
import type { DatabaseHandle } from '../database.ts';
import { LIST_ALL_CAP, collectPages } from '../platform/cursor.ts';
import { AppError } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
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
} from './schemas.ts';
import { CLI_CALLER } from './service.ts';
import type { KeyService } from './service.ts';

export interface KeysCliDeps {
  /** Builds the service (migrating the database) and returns what the commands need. */
  open(): Promise<{ keyService: KeyService; database: DatabaseHandle; close(): Promise<void> }>;
  out: (text: string) => void;
  err: (text: string) => void;
}

export const KEYS_USAGE = `tollhouse keys <subcommand> [options]

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
} as const;

class UsageError extends Error {}

export async function keysCommand(args: string[], deps: KeysCliDeps): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: OPTIONS,
    strict: true,
    allowPositionals: true,
  });
  const print = (value: unknown) => deps.out(`${JSON.stringify(value, null, 2)}\n`);
  const idArg = () => {
    const parsed = keyId.safeParse(positionals[0]);
    if (!parsed.success) throw new UsageError(`${sub} needs a key id (key_…)`);
    return parsed.data;
  };
  if (
    sub === undefined ||
    !['create', 'list', 'show', 'update', 'revoke', 'rotate'].includes(sub)
  ) {
    deps.err(`Unknown keys subcommand ${JSON.stringify(sub ?? '')}.\n\n${KEYS_USAGE}`);
    return 2;
  }
  let app: Awaited<ReturnType<KeysCliDeps['open']>> | undefined;
  try {
    // Arguments are checked before the database is opened: a typo answers at once.
    const id = ['show', 'update', 'revoke', 'rotate'].includes(sub) ? idArg() : '';
    const grace = values['grace-seconds'];
    const rotateBody =
      sub === 'rotate'
        ? rotateKeyBody.parse({
            grace_seconds: grace === undefined ? undefined : Number(grace),
            expires_at: values['expires-at'],
          })
        : undefined;
    app = await deps.open();
    const { keyService, database } = app;
    const accountOf = async (create: boolean): Promise<string> => {
      if (values.account !== undefined) return values.account;
      if (values.email === undefined) {
        throw new UsageError(
          create
            ? 'name the account: --email <address> (with --admin, created if missing) or --account <acct_…>'
            : 'name the account: --email <address> or --account <acct_…>',
        );
      }
      const found = await findAccountByEmail(database.db, values.email);
      if (found !== undefined) return found.id;
      if (!(create && values.admin))
        throw new UsageError(`no account has the email ${values.email}`);
      const email = z.email().safeParse(values.email);
      if (!email.success) throw new UsageError(`${values.email} is not an email address`);
      const account = await insertAccount(database.db, {
        id: newId('acct'),
        email: email.data,
        name: 'Operator',
        is_admin: true,
        email_verified: true,
      });
      deps.err(`created administrator account ${account.id} (${account.email})\n`);
      return account.id;
    };
    const expiry = () =>
      values['no-expiry']
        ? null
        : values['expires-at'] === undefined
          ? undefined
          : values['expires-at'];

    switch (sub) {
      case 'create': {
        const body = createKeyBody.parse({
          name: values.name ?? (values.admin ? 'operator' : 'cli'),
          kind: values.kind,
          account_id: await accountOf(true),
          app_id: values.app,
          scopes: values.admin ? ['admin', ...(values.scope ?? [])] : values.scope,
          allowed_origins: values.origin,
          allowed_resources: values.resource,
          expires_at: values['expires-at'],
        });
        print(toIssuedKeyView(await keyService.create(CLI_CALLER, toNewKeyInput(body))));
        return 0;
      }
      case 'list': {
        // The whole list, as before paging; `next_cursor` is non-null only past the cap.
        const accountId = await accountOf(false);
        const all = await collectPages(
          (cursor, limit) => keyService.list(CLI_CALLER, { accountId, limit, cursor }),
          LIST_ALL_CAP,
        );
        print(toKeyListView(all));
        return 0;
      }
      case 'show':
        print(toApiKeyView(await keyService.show(CLI_CALLER, id)));
        return 0;
      case 'update': {
        const body = updateKeyBody.parse(
          Object.fromEntries(
            Object.entries({
              name: values.name,
              scopes: values.scope,
              allowed_origins: values.origin,
              allowed_resources: values.resource,
              expires_at: expiry(),
            }).filter(([, v]) => v !== undefined),
          ),
        );
        print(toApiKeyView(await keyService.update(CLI_CALLER, id, toKeyPatch(body))));
        return 0;
      }
      case 'revoke':
        print(toApiKeyView(await keyService.revoke(CLI_CALLER, id)));
        return 0;
      case 'rotate':
        print(
          toRotatedKeyView(
            await keyService.rotate(
              CLI_CALLER,
              id,
              toRotateInput(rotateBody ?? rotateKeyBody.parse({})),
            ),
          ),
        );
        return 0;
    }
    return 2;
  } catch (error) {
    if (error instanceof UsageError) {
      deps.err(`tollhouse keys ${sub}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof z.ZodError) {
      const lines = error.issues.map((i) => `  - ${i.path.join('.') || 'input'}: ${i.message}`);
      deps.err(`tollhouse keys ${sub}: invalid options\n${lines.join('\n')}\n`);
      return 2;
    }
    if (error instanceof AppError && error.expose) {
      deps.err(`tollhouse keys ${sub}: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await app?.close();
  }
}
