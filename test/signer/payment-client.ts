// The go-livepeer side of the remote signer, for tests and benchmarks (no test runner needed):
// an orchestrator that builds OrchestratorInfo as go-livepeer's does, the body a gateway
// posts to /generate-live-payment, and the orchestrator's check of the Payment it receives.
import { randomBytes } from 'node:crypto';
import { Wallet, getBytes, hexlify, keccak256, verifyMessage } from 'ethers';
import { MAX_WIN_PROB, ticketHash } from '../../src/signer/index.ts';
import type { Wire } from '../../src/signer/index.ts';
import type { Anvil } from '../support/anvil.ts';

/** 32-byte big-endian word. */
export function word32(value: bigint): Uint8Array {
  return getBytes(`0x${value.toString(16).padStart(64, '0')}`);
}

export function minimal(value: bigint): Uint8Array {
  if (value === 0n) return new Uint8Array(0);
  const hex = value.toString(16);
  return getBytes(`0x${hex.length % 2 ? '0' : ''}${hex}`);
}

export interface DecodedTicket {
  recipient: string;
  sender: string;
  faceValue: bigint;
  winProb: bigint;
  senderNonce: bigint;
  recipientRandHash: string;
  auxData: string;
  sig: string;
}

/**
 * The orchestrator side: decodes a Payment and checks every ticket's signature recovers to
 * `signerAddress`, as go-livepeer's pm.Recipient does before accepting it.
 */
export function receivePayment(
  wire: Wire,
  paymentB64: string,
  signerAddress: string,
): DecodedTicket[] {
  const p = wire.decode('Payment', Buffer.from(paymentB64, 'base64')) as {
    ticketParams: Record<string, Uint8Array>;
    sender: Uint8Array;
    expirationParams: { creationRound: string; creationRoundBlockHash: Uint8Array };
    ticketSenderParams: Array<{ senderNonce: number; sig: Uint8Array }>;
  };
  const tp = p.ticketParams;
  const toBig = (b: Uint8Array) => (b.length === 0 ? 0n : BigInt(hexlify(b)));
  const aux = new Uint8Array(64);
  aux.set(word32(BigInt(p.expirationParams.creationRound)), 0);
  aux.set(p.expirationParams.creationRoundBlockHash, 32);
  return p.ticketSenderParams.map((sp) => {
    const ticket = {
      recipient: getBytes(tp.recipient!),
      sender: getBytes(p.sender),
      faceValue: toBig(tp.faceValue!),
      winProb: toBig(tp.winProb!),
      senderNonce: BigInt(sp.senderNonce),
      recipientRandHash: getBytes(tp.recipientRandHash!),
      auxData: aux,
    };
    const sig = hexlify(sp.sig);
    const recovered = verifyMessage(ticketHash(ticket), sig);
    if (recovered !== signerAddress) throw new Error(`ticket signed by ${recovered}`);
    return {
      recipient: hexlify(ticket.recipient),
      sender: hexlify(ticket.sender),
      faceValue: ticket.faceValue,
      winProb: ticket.winProb,
      senderNonce: ticket.senderNonce,
      recipientRandHash: hexlify(ticket.recipientRandHash),
      auxData: hexlify(aux),
      sig,
    };
  });
}

/** go-livepeer's body for POST /generate-live-payment. */
export function paymentBody(
  orchestrator: string,
  extra: Record<string, unknown> = {},
  state: { State: string | null; Sig: string | null } = { State: null, Sig: null },
) {
  return { state, orchestrator, ...extra };
}

export interface TestOrchestrator {
  wallet: Wallet;
  recipientRand: bigint;
  recipientRandHash: string;
  url: string;
  /** Base64 OrchestratorInfo as a gateway would pass it on. */
  info(overrides?: {
    pricePerUnit?: bigint;
    pixelsPerUnit?: bigint;
    faceValue?: bigint;
    winProb?: bigint;
    expirationBlock?: bigint;
    authExpiresAt?: bigint;
    omitPrice?: boolean;
    omitAuthToken?: boolean;
    /** Another recipientRandHash (an orchestrator that refreshed its ticket params). */
    recipientRandHash?: string;
  }): Promise<string>;
}

/** An orchestrator: its own recipientRand (secret) and the hash it publishes. */
export function testOrchestrator(world: {
  anvil: Pick<Anvil, 'provider'>;
  wire: Wire;
}): TestOrchestrator {
  const wallet = new Wallet(Wallet.createRandom().privateKey, world.anvil.provider);
  const recipientRand = BigInt(hexlify(randomBytes(32)));
  const recipientRandHash = keccak256(word32(recipientRand));
  const url = 'https://orchestrator.test:8935';
  return {
    wallet,
    recipientRand,
    recipientRandHash,
    url,
    async info(o = {}) {
      const block = BigInt(await world.anvil.provider.getBlockNumber());
      const now = BigInt(Math.floor(Date.now() / 1000));
      const bytes = world.wire.encode('OrchestratorInfo', {
        transcoder: url,
        ticketParams: {
          recipient: getBytes(wallet.address),
          faceValue: minimal(o.faceValue ?? 1_000_000_000_000n),
          winProb: minimal(o.winProb ?? MAX_WIN_PROB - 1n),
          recipientRandHash: getBytes(o.recipientRandHash ?? recipientRandHash),
          seed: randomBytes(16),
          expirationBlock: minimal(o.expirationBlock ?? block + 100n),
        },
        priceInfo: o.omitPrice
          ? undefined
          : {
              pricePerUnit: (o.pricePerUnit ?? 1_000n).toString(),
              pixelsPerUnit: (o.pixelsPerUnit ?? 1n).toString(),
            },
        address: getBytes(wallet.address),
        authToken: o.omitAuthToken
          ? undefined
          : {
              token: randomBytes(16),
              sessionId: 'session-1',
              expiration: (o.authExpiresAt ?? now + 1800n).toString(),
            },
      });
      return Buffer.from(bytes).toString('base64');
    },
  };
}
