// EIP-191 personal-sign for the payment signer's hot path, on bitcoin-core's libsecp256k1
// (tiny-secp256k1 v2: the C library compiled to WebAssembly, no install scripts). It signs
// ~3× faster than ethers' pure-JS secp256k1 here (bench/signer-payments.ts), and a payment
// costs one signature per ticket. ECDSA with RFC 6979 deterministic nonces and low-S normalisation is
// one function of (key, digest), so the bytes are exactly ethers' Wallet.signMessage — a test
// (test/signer/remote-vectors.test.ts) asserts it. ethers still opens the keystore.
import { Worker } from 'node:worker_threads';
import { getBytes } from 'ethers';
import { signRecoverable } from 'tiny-secp256k1';
import { keccak256Bytes } from './keccak.ts';

const ENCODER = new TextEncoder();
const PREFIX = ENCODER.encode('\x19Ethereum Signed Message:\n');

/** keccak256("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ message), as 32 bytes. */
export function eip191Digest(message: Uint8Array): Uint8Array {
  return keccak256Bytes(PREFIX, ENCODER.encode(String(message.length)), message);
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

export interface SigningPool {
  /** EIP-191 signatures of `messages`, in order (one round trip to one thread). */
  sign(messages: Uint8Array[]): Promise<Uint8Array[]>;
  close(): Promise<void>;
}

/**
 * `threads` worker threads signing with `privateKey` (./signing-worker.ts); 0 signs on the
 * calling thread. A payment's signatures go to one thread in one message; jobs go to the
 * thread with the fewest outstanding. A thread that dies fails its jobs and is replaced.
 */
export function createSigningPool(privateKey: string, threads: number): SigningPool {
  if (threads === 0) {
    const sign = createMessageSigner(privateKey);
    return { sign: async (messages) => messages.map(sign), close: async () => {} };
  }
  type Job = { resolve: (s: Uint8Array[]) => void; reject: (e: unknown) => void };
  interface Thread {
    worker: Worker;
    jobs: Map<number, Job>;
  }
  let nextId = 0;
  let closed = false;
  const start = (): Thread => {
    const worker = new Worker(new URL('./signing-worker.ts', import.meta.url), {
      workerData: { privateKey },
    });
    // Idle signing threads must not keep the process alive (close() ends them anyway).
    worker.unref();
    const thread: Thread = { worker, jobs: new Map() };
    worker.on('message', (m: { id: number; signatures: Uint8Array[] }) => {
      const job = thread.jobs.get(m.id);
      thread.jobs.delete(m.id);
      job?.resolve(m.signatures);
    });
    const fail = (error: unknown) => {
      for (const job of thread.jobs.values()) job.reject(error);
      thread.jobs.clear();
      const i = pool.indexOf(thread);
      if (!closed && i >= 0) pool[i] = start();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`signing thread exited with code ${code}`)));
    return thread;
  };
  const pool: Thread[] = Array.from({ length: threads }, start);
  return {
    sign(messages) {
      let thread = pool[0]!;
      for (const t of pool) if (t.jobs.size < thread.jobs.size) thread = t;
      const id = ++nextId;
      return new Promise<Uint8Array[]>((resolve, reject) => {
        thread.jobs.set(id, { resolve, reject });
        thread.worker.ref();
        thread.worker.postMessage({ id, messages });
      }).finally(() => {
        if (thread.jobs.size === 0) thread.worker.unref();
      });
    },
    async close() {
      closed = true;
      await Promise.all(pool.map((t) => t.worker.terminate()));
    },
  };
}
