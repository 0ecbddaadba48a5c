// Where webhooks may go. An endpoint URL is the customer's choice, and the server posts to it:
// without a rule, any account could make the server reach its own network (metadata services,
// databases, admin ports). So https is required (plain http only for loopback, or when the
// operator allows it), and addresses that are not public are refused unless the operator
// allows them — checked when the URL is registered (IP literals) and again at every connection
// (the address a host name resolves to then, so DNS rebinding cannot swap in a private one).
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { InvalidRequest } from '../platform/errors.ts';

export interface UrlPolicy {
  allowHttp: boolean;
  allowPrivateAddresses: boolean;
}

const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/** Whether `address` (an IP literal) is loopback, private, link-local or otherwise not public. */
export function isNotPublic(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 4) return NOT_PUBLIC.check(bare, 'ipv4');
  if (family !== 6) return false;
  // IPv4-mapped and -compatible IPv6 (::ffff:10.0.0.1) reach the IPv4 address.
  const mapped = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return NOT_PUBLIC.check(mapped[1]!, 'ipv4');
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(bare);
  if (hexMapped) {
    const high = Number.parseInt(hexMapped[1]!, 16);
    const low = Number.parseInt(hexMapped[2]!, 16);
    return NOT_PUBLIC.check(`${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`, 'ipv4');
  }
  return NOT_PUBLIC.check(bare, 'ipv6');
}

function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}

/**
 * The URL an endpoint may be registered with, normalised (WHATWG parsing: `0x7f.1` becomes
 * `127.0.0.1`), or 400 with the reason.
 */
export function checkEndpointUrl(input: string, policy: UrlPolicy): string {
  if (!URL.canParse(input)) throw new InvalidRequest('body.url: not a URL');
  const url = new URL(input);
  const refuse = (why: string) => new InvalidRequest(`body.url: ${why}`);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw refuse('expected an https:// URL');
  }
  if (url.username !== '' || url.password !== '') {
    throw refuse('must not contain a user name or password');
  }
  if (url.hash !== '') throw refuse('must not contain a #fragment');
  const loopback = isLoopbackHost(url.hostname);
  if (url.protocol === 'http:' && !loopback && !policy.allowHttp) {
    throw refuse('expected an https:// URL (plain http only for loopback hosts)');
  }
  if (!policy.allowPrivateAddresses && (loopback || isNotPublic(url.hostname))) {
    throw refuse(
      'points to a loopback, private or otherwise non-public address (the operator may allow them with WEBHOOK_ALLOW_PRIVATE_ADDRESSES)',
    );
  }
  return url.href;
}

export class AddressNotAllowed extends Error {
  constructor(host: string, address: string) {
    super(`${host} resolves to ${address}, which is not a public address`);
    this.name = 'AddressNotAllowed';
  }
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for the delivery agent's sockets: the system resolver, refusing every answer
 * that is not a public address (unless allowed). Net calls it with `all: true` when it races
 * address families, and without otherwise.
 */
export function guardedLookup(policy: UrlPolicy) {
  return function lookup(hostname: string, options: LookupOptions, callback: LookupCallback) {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      if (!policy.allowPrivateAddresses) {
        const blocked = addresses.find((a) => isNotPublic(a.address));
        if (blocked) return callback(new AddressNotAllowed(hostname, blocked.address), []);
      }
      if (options.all === true) return callback(null, addresses);
      const first = addresses[0];
      if (first === undefined) return callback(new Error(`${hostname} has no address`), []);
      callback(null, first.address, first.family);
    });
  };
}

/** The check at delivery time for URLs whose host is an IP literal (no lookup happens). */
export function assertDeliverable(url: URL, policy: UrlPolicy): void {
  if (policy.allowPrivateAddresses) return;
  if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0 && isNotPublic(url.hostname)) {
    throw new AddressNotAllowed(url.hostname, url.hostname);
  }
  if (isLoopbackHost(url.hostname)) throw new AddressNotAllowed(url.hostname, 'loopback');
}
