// `tollhouse apps …`, `tollhouse accounts …`, `tollhouse identity rotate-keys`: the same
// services as the REST API, for the operator at the command line. Results are JSON on stdout.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LIST_ALL_CAP, collectPages } from '../platform/cursor.ts';
import { AppError, InvalidRequest } from '../platform/errors.ts';
import type { AccountsService, AppsService } from './service.ts';
import type { RotationResult } from './signing-keys.ts';
import { findAccountByEmail } from './queries.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { decodeAccountCursor, encodeAccountCursor, toAppJson } from './schemas.ts';
import type { Account } from './queries.ts';
import type { AccountPatch, AppPatch } from './service.ts';
import type { OnboardingService } from './onboarding.ts';

/** What the commands use of the capability (the `Identity` of index.ts, which imports this
 * file: naming it here would close an import cycle). */
interface Identity {
  accounts: AccountsService;
  apps: AppsService;
  onboarding: OnboardingService;
  rotateKeys(): Promise<RotationResult>;
}

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const CLI_ACTOR = { id: 'cli' };
// A rotation keeps the old secret for a day unless told otherwise (see routes.ts).
const DEFAULT_GRACE_SECONDS = 24 * 3600;

export const APPS_USAGE = `tollhouse apps create --name N --kind public|web|machine --owner EMAIL|ACCOUNT_ID
         [--redirect-uri U]… [--post-logout-redirect-uri U]… [--origin O]… [--scope S]… [--grant-type G]…
       tollhouse apps list
       tollhouse apps show APP_ID
       tollhouse apps update APP_ID [--name N] [--redirect-uri U]… [--post-logout-redirect-uri U]…
         [--origin O]… [--scope S]… [--grant-type G]… [--status active|disabled]
       tollhouse apps disable APP_ID
       tollhouse apps rotate-secret APP_ID [--grace-seconds N]`;

const APP_OPTIONS = {
  name: { type: 'string' },
  kind: { type: 'string' },
  owner: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  origin: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  'grant-type': { type: 'string', multiple: true },
  status: { type: 'string' },
  'grace-seconds': { type: 'string' },
} as const;

/** Runs one command; AppErrors become a message on stderr and exit code 1. */
async function guarded(io: CliIo, run: () => Promise<unknown>): Promise<number> {
  try {
    const result = await run();
    io.out(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof AppError && error.expose) {
      io.err(`tollhouse: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

export async function appsCommand(
  identity: Identity,
  db: Kysely<Database>,
  args: string[],
  io: CliIo,
): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: APP_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  const id = positionals[0];
  const needId = () => {
    if (id === undefined) throw new InvalidRequest('expected an app id (app_…)');
    return id;
  };
  const patch = (): AppPatch => ({
    name: values.name,
    redirectUris: values['redirect-uri'],
    postLogoutRedirectUris: values['post-logout-redirect-uri'],
    allowedOrigins: values.origin,
    scopes: values.scope,
    grantTypes: values['grant-type'],
    status: values.status as AppPatch['status'],
  });
  switch (sub) {
    case 'create':
      return guarded(io, async () => {
        const kind = values.kind;
        if (kind !== 'public' && kind !== 'web' && kind !== 'machine') {
          throw new InvalidRequest('--kind: expected public, web or machine');
        }
        if (!values.name) throw new InvalidRequest('--name: required');
        if (!values.owner) throw new InvalidRequest('--owner: required (an email or acct_… id)');
        let owner = values.owner;
        if (owner.includes('@')) {
          const account = await findAccountByEmail(db, owner);
          if (account === undefined) throw new InvalidRequest(`--owner: no account ${owner}`);
          owner = account.id;
        }
        const { app, clientSecret } = await identity.apps.create(
          { ...patch(), name: values.name, kind, ownerAccountId: owner },
          CLI_ACTOR,
        );
        return { ...toAppJson(app), client_secret: clientSecret };
      });
    case 'list':
      return guarded(io, async () => {
        // The whole list, as before paging; `next_cursor` is non-null only past the cap.
        const all = await collectPages(
          (cursor, limit) => identity.apps.list(null, { limit, cursor }),
          LIST_ALL_CAP,
        );
        return { apps: all.items.map(toAppJson), next_cursor: all.nextCursor };
      });
    case 'show':
      return guarded(io, async () => toAppJson(await identity.apps.get(needId())));
    case 'update':
      return guarded(io, async () => {
        if (
          values.status !== undefined &&
          values.status !== 'active' &&
          values.status !== 'disabled'
        ) {
          throw new InvalidRequest('--status: expected active or disabled');
        }
        return toAppJson(await identity.apps.update(needId(), patch(), CLI_ACTOR));
      });
    case 'disable':
      return guarded(io, async () =>
        toAppJson(await identity.apps.update(needId(), { status: 'disabled' }, CLI_ACTOR)),
      );
    case 'rotate-secret':
      return guarded(io, async () => {
        const raw = values['grace-seconds'];
        const grace = raw === undefined ? DEFAULT_GRACE_SECONDS : Number(raw);
        if (raw !== undefined && !/^\d+$/.test(raw)) {
          throw new InvalidRequest('--grace-seconds: expected a whole number of seconds');
        }
        const { app, clientSecret } = await identity.apps.rotateSecret(needId(), grace, CLI_ACTOR);
        return { ...toAppJson(app), client_secret: clientSecret };
      });
    default:
      io.err(`Usage: ${APPS_USAGE}\n`);
      return 2;
  }
}

export const ACCOUNTS_USAGE = `tollhouse accounts create --email E --password-file F [--name N] [--admin]
       tollhouse accounts list [--query Q] [--status active|disabled] [--limit N] [--cursor C]
       tollhouse accounts show ACCOUNT_ID|EMAIL
       tollhouse accounts update ACCOUNT_ID|EMAIL [--name N | --clear-name] [--email E]
         [--status active|disabled]
       tollhouse accounts disable ACCOUNT_ID|EMAIL
       tollhouse accounts enable ACCOUNT_ID|EMAIL
       tollhouse accounts invite EMAIL [--no-email]
       tollhouse accounts reset-link ACCOUNT_ID|EMAIL
       tollhouse accounts verify ACCOUNT_ID|EMAIL

invite sends the invitation by e-mail when SMTP_URL is set (unless --no-email) and prints the
link when it did not; reset-link prints a password-reset link to hand over (nothing is sent);
verify marks the account's e-mail address as confirmed.`;

const ACCOUNT_OPTIONS = {
  email: { type: 'string' },
  'password-file': { type: 'string' },
  name: { type: 'string' },
  'clear-name': { type: 'boolean' },
  admin: { type: 'boolean' },
  query: { type: 'string' },
  status: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  'no-email': { type: 'boolean' },
} as const;

function accountJson(account: Account) {
  return {
    id: account.id,
    email: account.email,
    name: account.name,
    email_verified: account.emailVerified,
    is_admin: account.isAdmin,
    status: account.status,
  };
}

function parseStatus(raw: string | undefined): 'active' | 'disabled' | undefined {
  if (raw === undefined || raw === 'active' || raw === 'disabled') return raw;
  throw new InvalidRequest('--status: expected active or disabled');
}

export async function accountsCommand(
  identity: Identity,
  args: string[],
  io: CliIo,
): Promise<number> {
  const [sub, ...rest] = args;
  const known = [
    'create',
    'list',
    'show',
    'update',
    'disable',
    'enable',
    'invite',
    'reset-link',
    'verify',
  ];
  if (sub === undefined || !known.includes(sub)) {
    io.err(`Usage: ${ACCOUNTS_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: ACCOUNT_OPTIONS,
    allowPositionals: sub !== 'create' && sub !== 'list',
    strict: true,
  });
  const target = async () => {
    const key = positionals[0];
    if (key === undefined || positionals.length > 1) {
      throw new InvalidRequest('expected one account id (acct_…) or email');
    }
    return identity.accounts.find(key);
  };
  const update = async (patch: AccountPatch) => {
    const account = await target();
    return accountJson(await identity.accounts.update(account.id, patch, CLI_ACTOR));
  };
  switch (sub) {
    case 'list':
      return guarded(io, async () => {
        const raw = values.limit ?? '50';
        if (!/^\d{1,3}$/.test(raw)) throw new InvalidRequest('--limit: expected a number');
        // The same opaque cursor as GET /v1/accounts.
        const after = values.cursor === undefined ? null : decodeAccountCursor(values.cursor);
        if (after === null && values.cursor !== undefined) {
          throw new InvalidRequest('--cursor: not a cursor printed by accounts list');
        }
        const page = await identity.accounts.list({
          search: values.query ?? null,
          status: parseStatus(values.status) ?? null,
          limit: Number(raw),
          after,
        });
        return {
          accounts: page.accounts.map(accountJson),
          next_cursor: page.next === null ? null : encodeAccountCursor(page.next),
        };
      });
    case 'show':
      return guarded(io, async () => accountJson(await target()));
    case 'update':
      return guarded(io, async () => {
        if (values.name !== undefined && values['clear-name']) {
          throw new InvalidRequest('--name and --clear-name: give one of them');
        }
        return update({
          name: values['clear-name'] ? null : values.name,
          email: values.email,
          status: parseStatus(values.status),
        });
      });
    case 'disable':
      return guarded(io, () => update({ status: 'disabled' }));
    case 'enable':
      return guarded(io, () => update({ status: 'active' }));
    // Issue #18: links for the operator when e-mail is not configured (or not wanted).
    case 'invite':
      return guarded(io, async () => {
        const email = positionals[0];
        if (email === undefined || positionals.length > 1 || !email.includes('@')) {
          throw new InvalidRequest('expected one email address to invite');
        }
        const invitation = await identity.onboarding.invite(email, CLI_ACTOR, {
          send: !values['no-email'],
        });
        return {
          email: invitation.email,
          expires_at: invitation.expiresAt.toISOString(),
          email_sent: invitation.emailSent,
          link: invitation.link,
          ...(invitation.emailSent || values['no-email']
            ? {}
            : { note: 'E-mail is not configured (SMTP_URL): hand this link to the invitee.' }),
        };
      });
    case 'reset-link':
      return guarded(io, async () => {
        const account = await target();
        const issued = await identity.onboarding.resetLink(account.id, CLI_ACTOR);
        return {
          email: issued.email,
          link: issued.link,
          expires_at: issued.expiresAt.toISOString(),
        };
      });
    case 'verify':
      return guarded(io, async () =>
        accountJson(await identity.onboarding.markVerified((await target()).id, CLI_ACTOR)),
      );
  }
  return guarded(io, async () => {
    if (!values.email) throw new InvalidRequest('--email: required');
    const file = values['password-file'];
    if (!file)
      throw new InvalidRequest('--password-file: required (the password is never an argument)');
    let password: string;
    try {
      // Files written by editors and `echo` end with a newline that is not part of the password.
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new InvalidRequest(
        `--password-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    const account = await identity.accounts.create({
      email: values.email,
      password,
      name: values.name ?? null,
      isAdmin: values.admin ?? false,
    });
    return accountJson(account);
  });
}

export const IDENTITY_USAGE = 'tollhouse identity rotate-keys';

export async function identityCommand(
  identity: Identity,
  args: string[],
  io: CliIo,
): Promise<number> {
  if (args[0] !== 'rotate-keys' || args.length !== 1) {
    io.err(`Usage: ${IDENTITY_USAGE}\n`);
    return 2;
  }
  return guarded(io, async () => {
    const result = await identity.rotateKeys();
    return {
      active_kid: result.activeKid,
      next_kid: result.nextKid,
      retired_kid: result.retiredKid,
      retired_key_published_until: result.retireAfter.toISOString(),
      note: 'Running replicas switch to the new key now (no restart needed).',
    };
  });
}
