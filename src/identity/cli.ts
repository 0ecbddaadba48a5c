// `tollhouse apps …`, `tollhouse accounts …`, `tollhouse identity rotate-keys`: the same
// services as the REST API, for the operator at the command line. Results are JSON on stdout.
import { readFileSync } from 'node:fs';
import { CliUsageError, parseSubcommand, printJson, shown } from '../platform/cli.ts';
import type { CliCommand, CliContext } from '../platform/cli.ts';
import { LIST_ALL_CAP, collectPages } from '../platform/cursor.ts';
import { NotFound } from '../platform/errors.ts';
import type { AccountsService, AppsService } from './service.ts';
import type { SecondFactors } from './second-factor.ts';
import type { RotationResult } from './signing-keys.ts';
import { decodeAccountCursor, encodeAccountCursor, toAppJson } from './schemas.ts';
import type { Account } from './queries.ts';
import type { AccountPatch, AppPatch } from './service.ts';
import type { OnboardingService } from './onboarding.ts';

/** What the commands use of the capability (the `Identity` of index.ts, which imports this
 * file: naming it here would close an import cycle). */
export interface IdentityCliDeps {
  accounts: AccountsService;
  apps: AppsService;
  onboarding: OnboardingService;
  secondFactors: Pick<SecondFactors, 'resetAll'>;
  rotateKeys(): Promise<RotationResult>;
}

type Context = CliContext<IdentityCliDeps>;

const CLI_ACTOR = { id: 'cli' };
// A rotation keeps the old secret for a day unless told otherwise (see routes.ts).
const DEFAULT_GRACE_SECONDS = 24 * 3600;

const APPS_USAGE = `tollhouse apps <subcommand> [options]

  create         --name N --kind public|web|machine --owner EMAIL|ACCOUNT_ID
                 [--redirect-uri U]… [--post-logout-redirect-uri U]… [--origin O]… [--scope S]…
                 [--grant-type G]…
  list
  show           APP_ID
  update         APP_ID [--name N] [--redirect-uri U]… [--post-logout-redirect-uri U]…
                 [--origin O]… [--scope S]… [--grant-type G]… [--status active|disabled]
  disable        APP_ID
  rotate-secret  APP_ID [--grace-seconds N]
`;

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

const ACCOUNTS_USAGE = `tollhouse accounts <subcommand> [options]

  create   --email E --password-file F [--name N] [--admin]
  list     [--query Q] [--status active|disabled] [--limit N] [--cursor C]
  show     ACCOUNT_ID|EMAIL
  update   ACCOUNT_ID|EMAIL [--name N | --clear-name] [--email E] [--status active|disabled]
  disable  ACCOUNT_ID|EMAIL
  enable   ACCOUNT_ID|EMAIL
  invite      EMAIL [--no-email]
  reset-link  ACCOUNT_ID|EMAIL
  verify      ACCOUNT_ID|EMAIL
  reset-second-factor  ACCOUNT_ID|EMAIL
  invitations list
  invitations revoke EMAIL

invite sends the invitation by e-mail when SMTP_URL is set (unless --no-email) and prints the
link when it did not; reset-link prints a password-reset link to hand over (nothing is sent);
verify marks the account's e-mail address as confirmed. reset-second-factor removes the
account's authenticator app, recovery codes and passkeys and ends its sessions, for a holder who
lost them all: check who is asking first (docs/second-factor.md). invitations list shows the invitations
not yet accepted, revoked or expired (also those account holders sent); invitations revoke
makes every open invitation to EMAIL stop working.
`;

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

const IDENTITY_USAGE = `tollhouse identity rotate-keys
`;

export const identityCommands: Record<string, CliCommand<IdentityCliDeps>> = {
  apps: {
    summary: 'Manage OIDC apps (clients): create, list, show, update, disable, rotate-secret',
    usage: APPS_USAGE,
    run: appsCommand,
  },
  accounts: {
    summary:
      'Accounts: create (the first operator: --admin), list, show, update, disable, enable, invite, reset-link, verify, reset-second-factor, invitations',
    usage: ACCOUNTS_USAGE,
    run: accountsCommand,
  },
  identity: {
    summary: 'OIDC signing keys: rotate-keys publishes a new key and retires the old one',
    usage: IDENTITY_USAGE,
    run: identityCommand,
  },
};

// --- apps ---

const APP_SUBCOMMANDS = ['create', 'list', 'show', 'update', 'disable', 'rotate-secret'];

async function appsCommand(args: string[], context: Context): Promise<number> {
  const { sub, values, positionals } = parseSubcommand(args, APP_SUBCOMMANDS, APP_OPTIONS);
  const patch = (): AppPatch => ({
    name: values.name,
    redirectUris: values['redirect-uri'],
    postLogoutRedirectUris: values['post-logout-redirect-uri'],
    allowedOrigins: values.origin,
    scopes: values.scope,
    grantTypes: values['grant-type'],
    status: appStatus(values.status),
  });
  if (sub === 'create') {
    expectPositionals(sub, positionals, 0);
    const kind = values.kind;
    if (kind === undefined) throw new CliUsageError('create needs --kind public|web|machine');
    if (kind !== 'public' && kind !== 'web' && kind !== 'machine') {
      throw new CliUsageError(`--kind ${shown(kind)}: expected public, web or machine`);
    }
    if (!values.name) throw new CliUsageError('create needs --name');
    if (!values.owner) throw new CliUsageError('create needs --owner (an email or acct_… id)');
    const { accounts, apps } = await context.open();
    const owner = values.owner.includes('@')
      ? await accountIdByEmail(accounts, values.owner)
      : values.owner;
    const { app, clientSecret } = await apps.create(
      { ...patch(), name: values.name, kind, ownerAccountId: owner },
      CLI_ACTOR,
    );
    printJson(context.io, { ...toAppJson(app), client_secret: clientSecret });
    return 0;
  }
  if (sub === 'list') {
    expectPositionals(sub, positionals, 0);
    const { apps } = await context.open();
    // The whole list, as before paging; `next_cursor` is non-null only past the cap.
    const all = await collectPages(
      (cursor, limit) => apps.list(null, { limit, cursor }),
      LIST_ALL_CAP,
    );
    printJson(context.io, { apps: all.items.map(toAppJson), next_cursor: all.nextCursor });
    return 0;
  }
  const id = expectPositionals(sub, positionals, 1, 'an app id (app_…)');
  if (sub === 'show') {
    const { apps } = await context.open();
    printJson(context.io, toAppJson(await apps.get(id)));
  } else if (sub === 'update') {
    const changes = patch();
    const { apps } = await context.open();
    printJson(context.io, toAppJson(await apps.update(id, changes, CLI_ACTOR)));
  } else if (sub === 'disable') {
    const { apps } = await context.open();
    printJson(context.io, toAppJson(await apps.update(id, { status: 'disabled' }, CLI_ACTOR)));
  } else {
    const raw = values['grace-seconds'];
    if (raw !== undefined && !/^\d{1,9}$/.test(raw)) {
      throw new CliUsageError(`--grace-seconds ${shown(raw)}: expected a whole number of seconds`);
    }
    const { apps } = await context.open();
    const grace = raw === undefined ? DEFAULT_GRACE_SECONDS : Number(raw);
    const { app, clientSecret } = await apps.rotateSecret(id, grace, CLI_ACTOR);
    printJson(context.io, { ...toAppJson(app), client_secret: clientSecret });
  }
  return 0;
}

function appStatus(raw: string | undefined): 'active' | 'disabled' | undefined {
  if (raw === undefined || raw === 'active' || raw === 'disabled') return raw;
  throw new CliUsageError(`--status ${shown(raw)}: expected active or disabled`);
}

async function accountIdByEmail(accounts: AccountsService, email: string): Promise<string> {
  const account = await accounts.findByEmail(email);
  if (account === null) throw new NotFound(`--owner: no account has the email ${shown(email)}`);
  return account.id;
}

// --- accounts ---

const ACCOUNT_SUBCOMMANDS = [
  'create',
  'list',
  'show',
  'update',
  'disable',
  'enable',
  'invite',
  'reset-link',
  'verify',
  'reset-second-factor',
  'invitations',
];

async function invitationsCommand(positionals: string[], context: Context): Promise<number> {
  const [action, ...rest] = positionals;
  if (action === 'list') {
    expectPositionals('invitations list', rest, 0);
    const { onboarding } = await context.open();
    const pending = await onboarding.pendingInvitations();
    printJson(context.io, {
      invitations: pending.map((i) => ({
        email: i.email,
        created_by: i.createdBy,
        created_at: i.createdAt.toISOString(),
        expires_at: i.expiresAt.toISOString(),
      })),
    });
    return 0;
  }
  if (action === 'revoke') {
    const email = expectPositionals('invitations revoke', rest, 1, 'the invited email address');
    if (!email.includes('@')) {
      throw new CliUsageError(`invitations revoke ${shown(email)}: not an email address`);
    }
    const { onboarding } = await context.open();
    const revoked = await onboarding.revokeInvitations(email, CLI_ACTOR);
    if (revoked === 0) {
      throw new NotFound(`No open invitation to ${email}`);
    }
    printJson(context.io, { email, revoked });
    return 0;
  }
  throw new CliUsageError(
    action === undefined
      ? 'invitations needs list or revoke'
      : `invitations ${shown(action)}: expected list or revoke`,
  );
}

function accountJson(account: Account) {
  return {
    id: account.id,
    email: account.email,
    name: account.name,
    is_admin: account.isAdmin,
    status: account.status,
    email_verified: account.emailVerified,
  };
}

async function accountsCommand(args: string[], context: Context): Promise<number> {
  const { sub, values, positionals } = parseSubcommand(args, ACCOUNT_SUBCOMMANDS, ACCOUNT_OPTIONS);
  if (sub === 'create') {
    expectPositionals(sub, positionals, 0);
    const password = passwordFromFile(values['password-file']);
    if (!values.email) throw new CliUsageError('create needs --email');
    const { accounts } = await context.open();
    const account = await accounts.create({
      email: values.email,
      password,
      name: values.name ?? null,
      isAdmin: values.admin ?? false,
    });
    printJson(context.io, accountJson(account));
    return 0;
  }
  if (sub === 'list') {
    expectPositionals(sub, positionals, 0);
    const raw = values.limit ?? '50';
    if (!/^\d{1,3}$/.test(raw) || Number(raw) === 0) {
      throw new CliUsageError(`--limit ${shown(raw)}: expected a number from 1 to 999`);
    }
    // The same opaque cursor as GET /v1/accounts.
    const after = values.cursor === undefined ? null : decodeAccountCursor(values.cursor);
    if (after === null && values.cursor !== undefined) {
      throw new CliUsageError('--cursor: not a cursor printed by accounts list');
    }
    const status = accountStatus(values.status) ?? null;
    const { accounts } = await context.open();
    const page = await accounts.list({
      search: values.query ?? null,
      status,
      limit: Number(raw),
      after,
    });
    printJson(context.io, {
      accounts: page.accounts.map(accountJson),
      next_cursor: page.next === null ? null : encodeAccountCursor(page.next),
    });
    return 0;
  }
  // Links for the operator when e-mail is not configured (or not wanted).
  if (sub === 'invite') {
    const email = expectPositionals(sub, positionals, 1, 'the email address to invite');
    if (!email.includes('@'))
      throw new CliUsageError(`invite ${shown(email)}: not an email address`);
    const { onboarding } = await context.open();
    const invitation = await onboarding.invite(email, CLI_ACTOR, { send: !values['no-email'] });
    printJson(context.io, {
      email: invitation.email,
      expires_at: invitation.expiresAt.toISOString(),
      email_sent: invitation.emailSent,
      link: invitation.link,
      ...(invitation.emailSent || values['no-email']
        ? {}
        : { note: 'E-mail is not configured (SMTP_URL): hand this link to the invitee.' }),
    });
    return 0;
  }
  if (sub === 'invitations') return invitationsCommand(positionals, context);
  const key = expectPositionals(sub, positionals, 1, 'an account id (acct_…) or email');
  if (sub === 'reset-link' || sub === 'verify') {
    const { accounts, onboarding } = await context.open();
    const account = await accounts.find(key);
    if (sub === 'verify') {
      printJson(context.io, accountJson(await onboarding.markVerified(account.id, CLI_ACTOR)));
    } else {
      const issued = await onboarding.resetLink(account.id, CLI_ACTOR);
      printJson(context.io, {
        email: issued.email,
        link: issued.link,
        expires_at: issued.expiresAt.toISOString(),
      });
    }
    return 0;
  }
  if (sub === 'reset-second-factor') {
    const { accounts, secondFactors } = await context.open();
    const account = await accounts.find(key);
    const reset = await secondFactors.resetAll(account.id, CLI_ACTOR);
    printJson(context.io, {
      id: account.id,
      email: account.email,
      totp_removed: reset.totpRemoved,
      recovery_codes_removed: reset.recoveryCodesRemoved,
      passkeys_removed: reset.passkeysRemoved,
      sessions_ended: reset.sessionsEnded,
    });
    return 0;
  }
  let patch: AccountPatch | null = null;
  if (sub === 'update') {
    if (values.name !== undefined && values['clear-name']) {
      throw new CliUsageError('--name and --clear-name: give one of them');
    }
    patch = {
      name: values['clear-name'] ? null : values.name,
      email: values.email,
      status: accountStatus(values.status),
    };
  } else if (sub === 'disable') {
    patch = { status: 'disabled' };
  } else if (sub === 'enable') {
    patch = { status: 'active' };
  }
  const { accounts } = await context.open();
  const account = await accounts.find(key);
  printJson(
    context.io,
    accountJson(patch === null ? account : await accounts.update(account.id, patch, CLI_ACTOR)),
  );
  return 0;
}

function accountStatus(raw: string | undefined): 'active' | 'disabled' | undefined {
  if (raw === undefined || raw === 'active' || raw === 'disabled') return raw;
  throw new CliUsageError(`--status ${shown(raw)}: expected active or disabled`);
}

function passwordFromFile(file: string | undefined): string {
  if (!file) {
    throw new CliUsageError('create needs --password-file (a password is never an argument)');
  }
  try {
    // Files written by editors and `echo` end with a newline that is not part of the password.
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new CliUsageError(
      `--password-file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
}

// --- identity ---

async function identityCommand(args: string[], context: Context): Promise<number> {
  const { positionals } = parseSubcommand(args, ['rotate-keys'], {});
  expectPositionals('rotate-keys', positionals, 0);
  const identity = await context.open();
  const result = await identity.rotateKeys();
  printJson(context.io, {
    active_kid: result.activeKid,
    next_kid: result.nextKid,
    retired_kid: result.retiredKid,
    retired_key_published_until: result.retireAfter.toISOString(),
    note: 'Running replicas switch to the new key now (no restart needed).',
  });
  return 0;
}

/** Exactly `count` positionals (0 or 1); returns the one. */
function expectPositionals(
  sub: string,
  positionals: readonly string[],
  count: 0 | 1,
  what = '',
): string {
  if (count === 0 && positionals.length > 0) {
    throw new CliUsageError(
      `${sub} takes no arguments besides options (got ${shown(positionals[0]!)})`,
    );
  }
  if (count === 1 && positionals.length === 0) throw new CliUsageError(`${sub} needs ${what}`);
  if (count === 1 && positionals.length > 1) {
    throw new CliUsageError(`${sub} takes one argument, ${what}, not ${positionals.length}`);
  }
  return positionals[0] ?? '';
}
