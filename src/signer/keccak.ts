// keccak256 for the payment path (ticket hashes, EIP-191 digests): hash-wasm's WebAssembly
// Keccak, ~6× faster per hash here than the pure-JS one ethers uses (@noble/hashes), and it
// returns bytes where ethers returns a hex string the caller parses back. A payment hashes
// its tickets, their EIP-191 digests and the segment credentials.
import { createKeccak } from 'hash-wasm';

// One instance per thread (module), used synchronously: init → update → digest never
// interleave with another caller.
const hasher = await createKeccak(256);

/** keccak256 of the concatenated `parts`, 32 bytes. */
export function keccak256Bytes(...parts: Uint8Array[]): Uint8Array {
  hasher.init();
  for (const part of parts) hasher.update(part);
  return hasher.digest('binary');
}
