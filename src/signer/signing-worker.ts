// A signing thread of ./signing.ts's pool: EIP-191 digests and libsecp256k1 signatures off the
// request thread. The key arrives once, in workerData, and never leaves this thread again.
import { parentPort, workerData } from 'node:worker_threads';
import { createMessageSigner } from './signing.ts';

const sign = createMessageSigner((workerData as { privateKey: string }).privateKey);
parentPort!.on('message', (job: { id: number; messages: Uint8Array[] }) => {
  parentPort!.postMessage({ id: job.id, signatures: job.messages.map(sign) });
});
