// EIP-191 personal-sign with @noble/curves v2 (audited, pure JS): the same deterministic
// (RFC 6979), low-S signatures as ethers' Wallet.signMessage, ~1.5× faster on this machine
// (bench/signer-payments.ts) — signing is the remote signer's ceiling, three per payment.
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { getBytes, hashMessage, hexlify } from 'ethers';

/** Signs `message` (bytes as bytes, a string as UTF-8): 65 bytes R‖S‖V, V = 27/28, as hex. */
export function createEip191Signer(privateKey: string): (message: Uint8Array | string) => string {
  const key = getBytes(privateKey);
  return (message) => {
    const digest = getBytes(hashMessage(message));
    // 'recovered' is recovery byte ‖ r ‖ s.
    const raw = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' });
    const out = new Uint8Array(65);
    out.set(raw.subarray(1, 65), 0);
    out[64] = 27 + raw[0]!;
    return hexlify(out);
  };
}
