// Every e-mail identity sends, in one place: plain text plus simple HTML that says the same.
// The HTML is made with the `html` tag (every value escaped), has no images, scripts or remote
// styles (mail clients block them, and they would track the reader), and keeps the link as
// visible text so it can be copied where a client strips anchors. Pure, no I/O.
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';
import type { MailMessage } from '../platform/mail.ts';

export interface EmailContext {
  /** What the reader knows the service as: the host of PUBLIC_URL. */
  service: string;
}

function htmlBody(title: string, body: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title}</title>
      </head>
      <body style="font-family:system-ui,sans-serif;line-height:1.5;color:#18181b">
        ${body}
      </body>
    </html>`.value;
}

function button(link: string, label: string): Html {
  return html`<p>
      <a
        href="${link}"
        style="display:inline-block;padding:.6rem 1.2rem;background:#1d4ed8;color:#fff;border-radius:.25rem;text-decoration:none"
        >${label}</a
      >
    </p>
    <p>Or copy this address into your browser:<br /><code>${link}</code></p>`;
}

export function verifyEmailMessage(
  ctx: EmailContext,
  input: { to: string; link: string; hours: number },
): MailMessage {
  const subject = `Confirm your e-mail address for ${ctx.service}`;
  return {
    to: input.to,
    subject,
    text: [
      `Someone, hopefully you, created an account on ${ctx.service} with this address.`,
      '',
      'Open this link to confirm the address:',
      input.link,
      '',
      `The link works once, for ${input.hours} hours. Until the address is confirmed, the account cannot use the API.`,
      'If you did not sign up, ignore this message: nothing happens without the link.',
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>Someone, hopefully you, created an account on ${ctx.service} with this address.</p>
        ${button(input.link, 'Confirm my address')}
        <p>
          The link works once, for ${input.hours} hours. Until the address is confirmed, the account
          cannot use the API.
        </p>
        <p>If you did not sign up, ignore this message: nothing happens without the link.</p>`,
    ),
  };
}

export function resetPasswordMessage(
  ctx: EmailContext,
  input: { to: string; link: string; minutes: number },
): MailMessage {
  const subject = `Reset your password for ${ctx.service}`;
  return {
    to: input.to,
    subject,
    text: [
      `Someone asked to reset the password of your account on ${ctx.service}.`,
      '',
      'Open this link to choose a new password:',
      input.link,
      '',
      `The link works once, for ${input.minutes} minutes.`,
      'If you did not ask for this, ignore this message: your password stays as it is.',
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>Someone asked to reset the password of your account on ${ctx.service}.</p>
        ${button(input.link, 'Choose a new password')}
        <p>The link works once, for ${input.minutes} minutes.</p>
        <p>If you did not ask for this, ignore this message: your password stays as it is.</p>`,
    ),
  };
}

/** A sign-up with an address that already has an account: the form cannot say so (that would
 * tell anyone which addresses have accounts), so the owner of the address is told instead. */
export function accountExistsMessage(
  ctx: EmailContext,
  input: { to: string; link: string; minutes: number },
): MailMessage {
  const subject = `You already have an account on ${ctx.service}`;
  return {
    to: input.to,
    subject,
    text: [
      `Someone, hopefully you, tried to sign up on ${ctx.service} with this address, which already has an account.`,
      '',
      'Sign in with your password, or open this link to choose a new one:',
      input.link,
      '',
      `The link works once, for ${input.minutes} minutes.`,
      'If it was not you, ignore this message: nothing has changed.',
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>
          Someone, hopefully you, tried to sign up on ${ctx.service} with this address, which
          already has an account.
        </p>
        <p>Sign in with your password, or choose a new one:</p>
        ${button(input.link, 'Choose a new password')}
        <p>The link works once, for ${input.minutes} minutes.</p>
        <p>If it was not you, ignore this message: nothing has changed.</p>`,
    ),
  };
}

export function invitationMessage(
  ctx: EmailContext,
  input: { to: string; link: string; days: number },
): MailMessage {
  const subject = `You are invited to ${ctx.service}`;
  return {
    to: input.to,
    subject,
    text: [
      `You are invited to create an account on ${ctx.service}.`,
      '',
      'Open this link to choose your password:',
      input.link,
      '',
      `The link works once, for ${input.days} days.`,
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>You are invited to create an account on ${ctx.service}.</p>
        ${button(input.link, 'Create my account')}
        <p>The link works once, for ${input.days} days.</p>`,
    ),
  };
}

export function passwordChangedMessage(
  ctx: EmailContext,
  input: { to: string; at: Date; resetUrl: string },
): MailMessage {
  const subject = `Your password for ${ctx.service} was changed`;
  const when = input.at.toISOString().replace('T', ' ').slice(0, 16);
  return {
    to: input.to,
    subject,
    text: [
      `The password of your account on ${ctx.service} was changed at ${when} UTC, and every other sign-in session was ended.`,
      '',
      'If this was you, there is nothing to do.',
      `If it was not, reset your password now at ${input.resetUrl} and tell the operator of ${ctx.service}.`,
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>
          The password of your account on ${ctx.service} was changed at ${when} UTC, and every other
          sign-in session was ended.
        </p>
        <p>If this was you, there is nothing to do.</p>
        <p>
          If it was not, <a href="${input.resetUrl}">reset your password now</a> and tell the
          operator of ${ctx.service}.
        </p>`,
    ),
  };
}

/** Sent to the new address of an e-mail change: the link proves the caller reads it. */
export function confirmEmailChangeMessage(
  ctx: EmailContext,
  input: { to: string; link: string; hours: number },
): MailMessage {
  const subject = `Confirm your new e-mail address for ${ctx.service}`;
  return {
    to: input.to,
    subject,
    text: [
      `Someone, hopefully you, asked to use this address for an account on ${ctx.service}.`,
      '',
      'Open this link to confirm the address:',
      input.link,
      '',
      `The link works once, for ${input.hours} hours. Until it is used the account keeps its old address.`,
      'If you did not ask for this, ignore this message: nothing happens without the link.',
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>
          Someone, hopefully you, asked to use this address for an account on ${ctx.service}.
        </p>
        ${button(input.link, 'Confirm my new address')}
        <p>
          The link works once, for ${input.hours} hours. Until it is used the account keeps its old
          address.
        </p>
        <p>If you did not ask for this, ignore this message: nothing happens without the link.</p>`,
    ),
  };
}

/** Sent to the old address when a change is asked for and when it is made: whoever holds the
 * password cannot move the account away without its owner hearing of it. */
export function emailChangeNoticeMessage(
  ctx: EmailContext,
  input: { to: string; newEmail: string; at: Date; done: boolean; resetUrl: string },
): MailMessage {
  const subject = input.done
    ? `The e-mail address of your account on ${ctx.service} was changed`
    : `A change of e-mail address was requested on ${ctx.service}`;
  const when = input.at.toISOString().replace('T', ' ').slice(0, 16);
  const what = input.done
    ? `At ${when} UTC the account on ${ctx.service} that used this address changed it to ${input.newEmail}. Messages about the account now go there.`
    : `At ${when} UTC someone signed in to your account on ${ctx.service} asked to change its address to ${input.newEmail}. It changes only when the link sent there is opened.`;
  return {
    to: input.to,
    subject,
    text: [
      what,
      '',
      'If this was you, there is nothing to do.',
      `If it was not, reset your password now at ${input.resetUrl} and tell the operator of ${ctx.service}.`,
    ].join('\n'),
    html: htmlBody(
      subject,
      html`<p>${what}</p>
        <p>If this was you, there is nothing to do.</p>
        <p>
          If it was not, <a href="${input.resetUrl}">reset your password now</a> and tell the
          operator of ${ctx.service}.
        </p>`,
    ),
  };
}

/** Sent to the address an account had when its holder deleted it. */
export function accountDeletedMessage(
  ctx: EmailContext,
  input: { to: string; at: Date },
): MailMessage {
  const subject = `Your account on ${ctx.service} was deleted`;
  const when = input.at.toISOString().replace('T', ' ').slice(0, 16);
  const text = `Your account on ${ctx.service} was deleted at ${when} UTC: its API keys were revoked, its apps disabled and every session ended. If you did not do this, tell the operator of ${ctx.service}.`;
  return {
    to: input.to,
    subject,
    text,
    html: htmlBody(subject, html`<p>${text}</p>`),
  };
}
