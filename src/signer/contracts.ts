// The slices of the Livepeer contracts' ABIs the signer calls (LIVEPEER.md §4), in ethers'
// human-readable form.
import { Interface } from 'ethers';

export const CONTROLLER_ABI = ['function getContract(bytes32 id) view returns (address)'];

export const ROUNDS_MANAGER_ABI = [
  'function currentRound() view returns (uint256)',
  'function lastInitializedRound() view returns (uint256)',
  'function blockHashForRound(uint256 round) view returns (bytes32)',
];

export const TICKET_BROKER_ABI = [
  'function fundDeposit() payable',
  'function fundReserve() payable',
  'function fundDepositAndReserve(uint256 deposit, uint256 reserve) payable',
  'function fundDepositAndReserveFor(address addr, uint256 deposit, uint256 reserve) payable',
  'function unlock()',
  'function cancelUnlock()',
  'function withdraw()',
  'function getSenderInfo(address addr) view returns (tuple(uint256 deposit, uint256 withdrawRound) sender, tuple(uint256 fundsRemaining, uint256 claimedInCurrentRound) reserve)',
  'function claimableReserve(address reserveHolder, address claimant) view returns (uint256)',
  'function isUnlockInProgress(address sender) view returns (bool)',
  'function unlockPeriod() view returns (uint256)',
  'function ticketValidityPeriod() view returns (uint256)',
  'event DepositFunded(address indexed sender, uint256 amount)',
  'event ReserveFunded(address indexed reserveHolder, uint256 amount)',
  'event Unlock(address indexed sender, uint256 startRound, uint256 endRound)',
  'event UnlockCancelled(address indexed sender)',
  'event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve)',
  'event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount)',
  'event WinningTicketRedeemed(address indexed sender, address indexed recipient, uint256 faceValue, uint256 winProb, uint256 senderNonce, uint256 recipientRand, bytes auxData)',
];

export const ticketBrokerInterface = new Interface(TICKET_BROKER_ABI);

/** topic0 of every TicketBroker event; each has the sender as its first indexed argument. */
export const SENDER_EVENT_TOPICS: string[] = [
  'DepositFunded',
  'ReserveFunded',
  'Unlock',
  'UnlockCancelled',
  'Withdrawal',
  'WinningTicketTransfer',
  'WinningTicketRedeemed',
].map((name) => ticketBrokerInterface.getEvent(name)!.topicHash);
