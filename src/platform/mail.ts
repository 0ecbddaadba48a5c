// Outgoing e-mail: a port (`Mailer`) with one adapter, SMTP through nodemailer. Capabilities
// compose their messages (identity: src/identity/emails.ts) and hand them over here; nothing
// in this file knows what a message is for. Without SMTP_URL the port is `disabledMailer`, and
// callers tell the person that e-mail is not configured instead of pretending to send.
import nodemailer from 'nodemailer';
import type { Logger } from './log.ts';

export interface MailMessage {
  to: string;
  subject: string;
  /** Plain text: what every client can show; the HTML part says the same. */
  text: string;
  html: string;
}

export interface Mailer {
  /** False when no mail server is configured (send would throw MailNotConfigured). */
  readonly configured: boolean;
  /** Resolves when the mail server accepted the message; rejects when it did not. */
  send(message: MailMessage): Promise<void>;
  close(): void;
}

export class MailNotConfigured extends Error {
  constructor() {
    super('e-mail is not configured (set SMTP_URL and MAIL_FROM)');
    this.name = 'MailNotConfigured';
  }
}

export const disabledMailer: Mailer = {
  configured: false,
  send: () => Promise.reject(new MailNotConfigured()),
  close() {},
};

// A mail server that accepts the connection and then stalls must not hold a request (or a
// background send) for nodemailer's default 10 minutes; 30 s is ample for a healthy relay.
const SMTP_TIMEOUT_MS = 30_000;

/**
 * SMTP, one pooled transport per process. `smtps://` is TLS from the start (port 465);
 * `smtp://` upgrades with STARTTLS when the server offers it (nodemailer's default). Credentials
 * ride in the URL (`smtp://user:pass@host:587`), which is a secret setting.
 */
export function createSmtpMailer(input: { url: string; from: string; log: Logger }): Mailer {
  const transport = nodemailer.createTransport({
    url: input.url,
    pool: true,
    connectionTimeout: SMTP_TIMEOUT_MS,
    greetingTimeout: SMTP_TIMEOUT_MS,
    socketTimeout: SMTP_TIMEOUT_MS,
  });
  return {
    configured: true,
    async send(message) {
      const info = await transport.sendMail({
        from: input.from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
      // The recipient is personal data: the log keeps the message id, not the address.
      input.log.info({ messageId: info.messageId }, 'e-mail sent');
    },
    close() {
      transport.close();
    },
  };
}

export interface BackgroundMail {
  /** Sends without waiting: an answer must not wait for (or reveal) the mail server. A failure
   * is logged. Nothing is sent when e-mail is not configured. */
  deliver(message: MailMessage): void;
  /** Resolves once every message handed over so far has been sent or has failed. */
  drain(): Promise<void>;
}

export function createBackgroundMail(mailer: Mailer, log: Logger): BackgroundMail {
  const pending = new Set<Promise<void>>();
  return {
    deliver(message) {
      if (!mailer.configured) return;
      const sending = mailer
        .send(message)
        .catch((error: unknown) => log.error({ err: error }, 'e-mail could not be sent'))
        .finally(() => pending.delete(sending));
      pending.add(sending);
    },
    async drain() {
      await Promise.allSettled([...pending]);
    },
  };
}
