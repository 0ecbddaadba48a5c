// Shared set-up of the remote-signer tests: anvil with the Livepeer test contracts, a signer
// account with a TicketBroker deposit and reserve, the app on the test database, a real API
// key with the `signer` scope, and a test orchestrator that builds OrchestratorInfo the way
// go-livepeer's does (ticket params from its own secret recipientRand).
import type { Contract } from 'ethers';
import { getBytes, hexlify, keccak256, parseEther, verifyMessage } from 'ethers';
import type { DatabaseHandle } from '../../src/database.ts';
import type { SpendGate } from '../../src/platform/spend.ts';
import { createWire, ticketHash } from '../../src/signer/index.ts';
import type { Wire } from '../../src/signer/index.ts';
import { createApp } from '../../src/app.ts';
import { createLogger } from '../../src/platform/log.ts';
import { startServer } from '../../src/platform/server.ts';
import { deployLivepeer, startAnvil } from '../support/anvil.ts';
import type { Anvil, Livepeer } from '../support/anvil.ts';
import { testConfig } from '../support/app.ts';
import { movingClock } from '../support/clock.ts';
import type { TestApp } from '../support/app.ts';
import { issueKey } from '../support/credentials.ts';
import { createTestDatabase } from '../support/db.ts';
import type { TestDatabase } from '../support/db.ts';
import { fundedAccount, signerEnv } from './helpers.ts';
import type { SignerAccount } from './helpers.ts';
import { CHAIN_POLL } from '../support/anvil.ts';
import { eventually } from '../support/eventually.ts';
import { newAccount } from '../support/fixtures.ts';
import { word32 } from './payment-client.ts';
import type { DecodedTicket, TestOrchestrator } from './payment-client.ts';

export {
  minimal,
  paymentBody,
  receivePayment,
  testOrchestrator,
  word32,
} from './payment-client.ts';
export type { DecodedTicket, TestOrchestrator } from './payment-client.ts';

export interface RemoteSignerWorld {
  anvil: Anvil;
  livepeer: Livepeer;
  account: SignerAccount;
  database: TestDatabase;
  handle: DatabaseHandle;
  /** Shaped like startTestApp's result so test/support/credentials.ts works with it. */
  t: TestApp;
  /** A backend key with the signer scope, and its account. */
  key: { secret: string; accountId: string; keyId: string };
  wire: Wire;
  close(): Promise<void>;
}

export async function startRemoteSignerWorld(
  options: { env?: Record<string, string>; spend?: SpendGate } = {},
): Promise<RemoteSignerWorld> {
  const anvil = await startAnvil();
  const livepeer = await deployLivepeer(anvil);
  const account = await fundedAccount(anvil);
  // The signer's own deposit and reserve, funded from its account directly.
  const broker = livepeer.ticketBroker.connect(account.wallet.connect(anvil.provider)) as Contract;
  const tx = (await broker.getFunction('fundDepositAndReserve')(parseEther('1'), parseEther('1'), {
    value: parseEther('2'),
  })) as { wait(): Promise<unknown> };
  await tx.wait();

  const database = await createTestDatabase();
  const handle = await database.open();
  const log = createLogger({ level: 'silent' });
  const config = testConfig({
    PORT: '1',
    ...signerEnv(anvil.url, livepeer, account),
    ...options.env,
  });
  const clock = movingClock();
  const app = await createApp({ config, log, clock, database: handle, spend: options.spend });
  const server = await startServer(app.handler, {
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: config.http.shutdownTimeoutMs,
    log,
  });
  const t: TestApp = {
    app,
    server,
    url: `http://127.0.0.1:${server.port}`,
    database,
    clock,
    async close() {
      await server.close();
      await app.close();
    },
  };
  await eventually(
    () => {
      const s = app.signer.snapshot();
      return s !== null && s.sender.depositWei > 0n && s.sender.reserveWei > 0n;
    },
    { ...CHAIN_POLL, what: 'a chain view with the deposit' },
  );
  const accountId = await newAccount(t);
  const issued = await issueKey(t, accountId, { scopes: ['signer'] });
  return {
    anvil,
    livepeer,
    account,
    database,
    handle,
    t,
    key: { secret: issued.secret, accountId, keyId: issued.key.id },
    wire: createWire(),
    async close() {
      await t.close();
      await database.destroy();
      await anvil.stop();
    },
  };
}

/**
 * Another app (a replica) on the world's database and chain, with its own settings — for
 * settings that name things created through the first one (SIGNER_SHARED_CREDENTIALS).
 */
export async function startReplica(
  world: RemoteSignerWorld,
  options: { env?: Record<string, string>; spend?: SpendGate } = {},
): Promise<TestApp> {
  const log = createLogger({ level: 'silent' });
  const config = testConfig({
    PORT: '1',
    ...signerEnv(world.anvil.url, world.livepeer, world.account),
    ...options.env,
  });
  const clock = movingClock();
  const app = await createApp({ config, log, clock, database: world.handle, spend: options.spend });
  const server = await startServer(app.handler, {
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: config.http.shutdownTimeoutMs,
    log,
  });
  await eventually(
    () => {
      const s = app.signer.snapshot();
      return s !== null && s.sender.depositWei > 0n && s.sender.reserveWei > 0n;
    },
    { ...CHAIN_POLL, what: 'a chain view with the deposit' },
  );
  return {
    app,
    server,
    url: `http://127.0.0.1:${server.port}`,
    database: world.database,
    clock,
    async close() {
      await server.close();
      await app.close();
    },
  };
}

export async function signerUsageEvents(handle: DatabaseHandle) {
  return handle.db
    .selectFrom('usage_events')
    .selectAll()
    .where('source', '=', 'tollhouse/signer')
    .orderBy('id')
    .execute();
}

export async function sessionRows(handle: DatabaseHandle) {
  return handle.db.selectFrom('signer_sessions').selectAll().execute();
}

/**
 * The orchestrator's check of segCreds (go-livepeer server/segment_rpc.go verifySegCreds →
 * core/orchestrator.go VerifySig): EIP-191 over keccak256(SegTranscodingMetadata.Flatten()),
 * where Flatten = ManifestID ‖ leftPad32(seq) ‖ hash ‖ hex of the profiles (core/streamdata.go).
 * Returns the address the signature recovers to, and the decoded manifest id.
 */
export function segCredsSigner(
  wire: Wire,
  segCredsB64: string,
): { signer: string; manifestId: string; seq: bigint; hash: string } {
  const seg = wire.decode('SegData', Buffer.from(segCredsB64, 'base64')) as {
    manifestId: Uint8Array;
    seq?: string | number;
    hash: Uint8Array;
    profiles?: Uint8Array;
    sig: Uint8Array;
  };
  // The signer pays for the empty segment: no profiles (ProfilesToHex of none is "").
  if ((seg.profiles?.length ?? 0) !== 0) throw new Error('segCreds carry profiles');
  const seq = BigInt(seg.seq ?? 0);
  const flatten = new Uint8Array([...seg.manifestId, ...word32(seq), ...seg.hash]);
  return {
    signer: verifyMessage(getBytes(keccak256(flatten)), hexlify(seg.sig)),
    manifestId: Buffer.from(seg.manifestId).toString(),
    seq,
    hash: hexlify(seg.hash),
  };
}

/** The ticket as the TicketBroker's `Ticket` struct, in its field order. */
export function ticketTuple(t: DecodedTicket) {
  return [
    t.recipient,
    t.sender,
    t.faceValue,
    t.winProb,
    t.senderNonce,
    t.recipientRandHash,
    t.auxData,
  ] as const;
}

/**
 * The orchestrator redeems every ticket with redeemWinningTicket on the real TicketBroker,
 * after checking that the contract's getTicketHash equals the hash the signer signed; each
 * redemption must emit WinningTicketRedeemed for that nonce. Returns the face values paid.
 */
export async function redeemEveryTicket(
  world: RemoteSignerWorld,
  orch: TestOrchestrator,
  tickets: readonly DecodedTicket[],
): Promise<bigint> {
  await world.anvil.setBalance(orch.wallet.address, 10n ** 18n);
  const broker = world.livepeer.ticketBroker.connect(orch.wallet) as Contract;
  const redeemed = broker.interface.getEvent('WinningTicketRedeemed')!;
  let paid = 0n;
  for (const t of tickets) {
    const signed = hexlify(
      ticketHash({
        recipient: getBytes(t.recipient),
        sender: getBytes(t.sender),
        faceValue: t.faceValue,
        winProb: t.winProb,
        senderNonce: t.senderNonce,
        recipientRandHash: getBytes(t.recipientRandHash),
        auxData: getBytes(t.auxData),
      }),
    );
    const onChain = (await broker.getFunction('getTicketHash')(ticketTuple(t))) as string;
    if (onChain !== signed) throw new Error(`getTicketHash ${onChain} ≠ signed hash ${signed}`);
    const tx = (await broker.getFunction('redeemWinningTicket')(
      ticketTuple(t),
      t.sig,
      orch.recipientRand,
    )) as { wait(): Promise<{ logs: Array<{ topics: string[]; data: string }> }> };
    const receipt = await tx.wait();
    const log = receipt.logs.find((l) => l.topics[0] === redeemed.topicHash);
    if (log === undefined) throw new Error(`ticket ${t.senderNonce}: no WinningTicketRedeemed`);
    const args = broker.interface.decodeEventLog(redeemed, log.data, log.topics);
    if (args.senderNonce !== t.senderNonce || args.faceValue !== t.faceValue) {
      throw new Error(`ticket ${t.senderNonce}: redeemed ${String(args.senderNonce)}`);
    }
    paid += t.faceValue;
  }
  return paid;
}

/** TicketBroker.getSenderInfo: deposit and reserve (fundsRemaining) of an address. */
export async function senderFunds(
  world: RemoteSignerWorld,
  address: string,
): Promise<{ deposit: bigint; reserve: bigint }> {
  const [sender, reserve] = (await world.livepeer.ticketBroker.getFunction('getSenderInfo')(
    address,
  )) as [{ deposit: bigint }, { fundsRemaining: bigint }];
  return { deposit: sender.deposit, reserve: reserve.fundsRemaining };
}
