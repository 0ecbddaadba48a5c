// The payment signer: keystore, chain view, TicketBroker funding (journal + policy), status.
// Other capabilities (the remote-signer protocol, later) reach it only through what is
// exported here: `Signer.paymentSigner()` to sign and `Signer.snapshot()` for chain state.
export type { FundingTransactionsTable } from './table.ts';
export type { ChainSnapshot, ContractAddresses, RpcStatus, SenderInfo } from './chain.ts';
export type { PaymentSigner, Signer, SignerStatus } from './service.ts';
export type { FundingTransaction } from './queries.ts';
export { createSigner } from './service.ts';
export { signerRoutes } from './routes.ts';
export { fundingTransactionJson, signerStatusJson } from './schemas.ts';
export type { SignerStatusJson } from './schemas.ts';
export { SignerStartupError, WrongKeystorePassword } from './errors.ts';
export { keystoreAddress, openKeystore, writeKeystore } from './keystore.ts';
export { createMessageSigner, createSigningPool, eip191Digest } from './signing.ts';
export type { SigningPool } from './signing.ts';
export { KEYSTORE_USAGE, SIGNER_USAGE, runKeystoreCommand, runSignerCommand } from './cli.ts';
export { FUNDING_LOCK_KEY } from './funding.ts';
// Part 2: the go-livepeer remote-signer protocol.
export { createRemoteSigner } from './remote/index.ts';
export { SIGNER_PATHS, isSignerPath, signerNotFound } from './remote/routes.ts';
export type { SignerSessionsTable } from './remote/table.ts';
export type { RemoteSignerService, LivePaymentRequest } from './remote/service.ts';
// The steps of one payment, for their own tests (test/signer/payment-steps.test.ts).
export {
  billableUnits,
  checkPriceCeilings,
  checkRefresh,
  countTickets,
  makeTickets,
  readOffer,
  restoreSession,
} from './remote/payment.ts';
export type { Offer, Session, TicketTerms } from './remote/payment.ts';
export { createSessions } from './remote/sessions.ts';
export type { StreamDirectory, StreamOwner } from './remote/payers.ts';
export { createWire } from './remote/wire.ts';
export type { Wire } from './remote/wire.ts';
export { auxData, expectedValue, ticketHash, MAX_WIN_PROB } from './remote/ticket.ts';
export { encodeState, decodeState } from './remote/state.ts';
