// EIP-191 personal-sign for the payment signer's hot path, on bitcoin-core's libsecp256k1
// (tiny-secp256k1 v2: the C library compiled to WebAssembly, no install scripts). It signs
// ~3× faster than ethers' pure-JS secp256k1 here (bench/signer-payments.ts), and a payment
// costs two signatures. ECDSA with RFC 6979 deterministic nonces and low-S normalisation is
// one function of (key, digest), so the bytes are exactly ethers' Wallet.signMessage — a test
// (test/signer/remote-vectors.test.ts) asserts it. ethers still opens the keystore.
import { getBytes, keccak256 } from 'ethers';
import { signRecoverable } from 'tiny-secp256k1';

const PREFIX = new TextEncoder().encode('\x19Ethereum Signed Message:\n');

/** keccak256("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ message), as 32 bytes. */
export function eip191Digest(message: Uint8Array): Uint8Array {
  const length = new TextEncoder().encode(String(message.length));
  const packed = new Uint8Array(PREFIX.length + length.length + message.length);
  packed.set(PREFIX, 0);
  packed.set(length, PREFIX.length);
  packed.set(message, PREFIX.length + length.length);
  return getBytes(keccak256(packed));
}

/**
 * A synchronous EIP-191 signer over `privateKey` (0x + 64 hex): 65 bytes R‖S‖V with V 27/28
 * and S low, as go-livepeer's accounts.Sign produces and the TicketBroker accepts.
 */
export function createMessageSigner(privateKey: string): (message: Uint8Array) => Uint8Array {
  const key = getBytes(privateKey);
  return function signMessage(message) {
    const { signature, recoveryId } = signRecoverable(eip191Digest(message), key);
    const out = new Uint8Array(65);
    out.set(signature, 0);
    // libsecp256k1 normalises to low S, so the recovery id is 0 or 1: Ethereum's V is 27 + id.
    out[64] = 27 + recoveryId;
    return out;
  };
}
