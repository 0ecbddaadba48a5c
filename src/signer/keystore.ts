// The signer's Ethereum account in a Web3 Secret Storage v3 keystore — the format geth and
// go-livepeer write (scrypt + aes-128-ctr, keccak MAC), so their files open unchanged. ethers
// implements the format; this file only adds file handling and errors an operator can act on.
import { readFileSync, writeFileSync } from 'node:fs';
import { Wallet, encryptKeystoreJson, getAddress, isHexString } from 'ethers';
import type { HDNodeWallet } from 'ethers';
import { KeystoreUnreadable, WrongKeystorePassword } from './errors.ts';

// geth's "standard" scrypt cost (N = 2^18, p = 1), which go-livepeer also uses; ethers' own
// default is 2^17. Decrypting takes about a second, once per start.
const STANDARD_SCRYPT_N = 1 << 18;

export interface KeystoreWriteOptions {
  /** scrypt N; lower only in tests. */
  scryptN?: number;
}

/** Encrypts `privateKey` (0x + 64 hex) and writes it to `file` (mode 0600, never overwrites). */
export async function writeKeystore(
  file: string,
  privateKey: string,
  password: string,
  options: KeystoreWriteOptions = {},
): Promise<string> {
  const wallet = new Wallet(privateKey);
  const json = await encryptKeystoreJson(
    { address: wallet.address, privateKey: wallet.privateKey },
    password,
    { scrypt: { N: options.scryptN ?? STANDARD_SCRYPT_N } },
  );
  // geth writes the section as `crypto`; ethers as `Crypto`. Both read either (Go's JSON
  // decoding ignores case), but the file should look like what geth and go-livepeer write.
  const { Crypto, ...rest } = JSON.parse(json) as Record<string, unknown>;
  const gethStyle = JSON.stringify({ ...rest, crypto: Crypto });
  writeFileSync(file, `${gethStyle}\n`, { mode: 0o600, flag: 'wx' });
  return wallet.address;
}

/** `0x` + 64 hex digits (the `0x` optional), as `geth account import` accepts. */
export function parsePrivateKey(text: string): string {
  const trimmed = text.trim();
  const key = trimmed.startsWith('0x') ? trimmed : `0x${trimmed}`;
  if (!isHexString(key, 32) || /^0x0+$/.test(key)) {
    throw new KeystoreUnreadable('expected a private key of 64 hex digits on stdin');
  }
  return key;
}

/** The address a keystore file is for, without its password (the `address` field). */
export function keystoreAddress(file: string): string {
  const json = readKeystoreJson(file);
  const address = (JSON.parse(json) as { address?: unknown }).address;
  if (typeof address !== 'string' || !/^(0x)?[0-9a-fA-F]{40}$/.test(address)) {
    throw new KeystoreUnreadable(`${file} has no address field`);
  }
  return getAddress(address.startsWith('0x') ? address : `0x${address}`);
}

/** Decrypts the keystore; a wrong password is a WrongKeystorePassword naming the file only. */
export async function openKeystore(file: string, password: string): Promise<Wallet | HDNodeWallet> {
  const json = readKeystoreJson(file);
  try {
    return await Wallet.fromEncryptedJson(json, password);
  } catch (error) {
    // ethers: "incorrect password" when the MAC does not match.
    if (String((error as Error).message).includes('incorrect password')) {
      throw new WrongKeystorePassword(file);
    }
    throw new KeystoreUnreadable(`${file} is not a Web3 Secret Storage keystore`, {
      cause: error,
    });
  }
}

function readKeystoreJson(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new KeystoreUnreadable(`cannot read the keystore ${file} (${code})`);
  }
  try {
    const parsed = JSON.parse(text) as { version?: unknown; crypto?: unknown; Crypto?: unknown };
    if (parsed.version !== 3 || (parsed.crypto ?? parsed.Crypto) === undefined) throw new Error();
  } catch {
    throw new KeystoreUnreadable(`${file} is not a Web3 Secret Storage v3 keystore`);
  }
  return text;
}
