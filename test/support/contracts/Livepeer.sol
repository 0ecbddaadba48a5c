// SPDX-License-Identifier: MIT
// Test doubles of the Livepeer protocol contracts the signer talks to, written from
// LIVEPEER.md §4 (function signatures, events, revert reasons where they matter). They keep
// the behaviour tollhouse depends on — deposit/reserve accounting, unlock periods measured in
// rounds, ticket hash and signature checks — and leave out what it does not (staking, the
// reserve pool of active orchestrators: the claimable share here is the whole reserve).
pragma solidity ^0.8.24;

contract TestController {
    address public immutable owner;
    mapping(bytes32 => address) private registry;

    constructor() {
        owner = msg.sender;
    }

    function setContractInfo(bytes32 id, address addr) external {
        require(msg.sender == owner, "caller must be owner");
        registry[id] = addr;
    }

    function getContract(bytes32 id) external view returns (address) {
        return registry[id];
    }
}

/// Rounds advance only when a test calls `advanceRound`, so unlock periods are deterministic.
contract TestRoundsManager {
    uint256 public currentRound;
    uint256 public lastInitializedRound;
    mapping(uint256 => bytes32) private roundBlockHashes;

    constructor(uint256 firstRound) {
        currentRound = firstRound;
        _initialize();
    }

    function advanceRound() external {
        currentRound += 1;
        _initialize();
    }

    function blockHashForRound(uint256 round) external view returns (bytes32) {
        return roundBlockHashes[round];
    }

    function currentRoundInitialized() external view returns (bool) {
        return lastInitializedRound == currentRound;
    }

    function _initialize() private {
        lastInitializedRound = currentRound;
        // The block hash of the block before the initialising one, as RoundsManager records.
        roundBlockHashes[currentRound] = blockhash(block.number - 1);
    }
}

/// Stands in for BondingManager: the signer only resolves its address.
contract TestBondingManager {
    function getTranscoderPoolSize() external pure returns (uint256) {
        return 1;
    }
}

interface IRounds {
    function currentRound() external view returns (uint256);
    function blockHashForRound(uint256 round) external view returns (bytes32);
}

contract TestTicketBroker {
    struct Sender {
        uint256 deposit;
        uint256 withdrawRound;
    }

    struct ReserveInfo {
        uint256 fundsRemaining;
        uint256 claimedInCurrentRound;
    }

    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        bytes auxData;
    }

    event DepositFunded(address indexed sender, uint256 amount);
    event ReserveFunded(address indexed reserveHolder, uint256 amount);
    event Unlock(address indexed sender, uint256 startRound, uint256 endRound);
    event UnlockCancelled(address indexed sender);
    event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve);
    event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount);
    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        uint256 faceValue,
        uint256 winProb,
        uint256 senderNonce,
        uint256 recipientRand,
        bytes auxData
    );

    IRounds public immutable roundsManager;
    uint256 public unlockPeriod;
    uint256 public ticketValidityPeriod;
    mapping(address => Sender) private senders;
    mapping(address => uint256) private reserves;
    mapping(address => mapping(uint256 => uint256)) private claimedInRound;
    mapping(address => mapping(address => mapping(uint256 => uint256))) private claimedBy;
    mapping(bytes32 => bool) public usedTickets;

    constructor(address rounds, uint256 unlockPeriodRounds, uint256 validityRounds) {
        roundsManager = IRounds(rounds);
        unlockPeriod = unlockPeriodRounds;
        ticketValidityPeriod = validityRounds;
    }

    function fundDeposit() external payable {
        _addDeposit(msg.sender, msg.value);
    }

    function fundReserve() external payable {
        _addReserve(msg.sender, msg.value);
    }

    function fundDepositAndReserve(uint256 depositAmount, uint256 reserveAmount) external payable {
        _fund(msg.sender, depositAmount, reserveAmount);
    }

    function fundDepositAndReserveFor(address addr, uint256 depositAmount, uint256 reserveAmount)
        external
        payable
    {
        _fund(addr, depositAmount, reserveAmount);
    }

    function unlock() external {
        Sender storage sender = senders[msg.sender];
        require(sender.deposit > 0 || reserves[msg.sender] > 0, "sender deposit and reserve are zero");
        require(sender.withdrawRound == 0, "unlock already initiated");
        uint256 current = roundsManager.currentRound();
        sender.withdrawRound = current + unlockPeriod;
        emit Unlock(msg.sender, current, sender.withdrawRound);
    }

    function cancelUnlock() external {
        Sender storage sender = senders[msg.sender];
        require(sender.withdrawRound > 0, "no unlock request in progress");
        sender.withdrawRound = 0;
        emit UnlockCancelled(msg.sender);
    }

    function withdraw() external {
        Sender storage sender = senders[msg.sender];
        uint256 reserve = reserves[msg.sender];
        require(sender.deposit > 0 || reserve > 0, "sender deposit and reserve are zero");
        require(sender.withdrawRound > 0, "no unlock request in progress");
        require(roundsManager.currentRound() >= sender.withdrawRound, "account is locked");
        uint256 deposit = sender.deposit;
        sender.deposit = 0;
        sender.withdrawRound = 0;
        reserves[msg.sender] = 0;
        emit Withdrawal(msg.sender, deposit, reserve);
        (bool ok, ) = payable(msg.sender).call{value: deposit + reserve}("");
        require(ok, "transfer failed");
    }

    function getSenderInfo(address addr)
        external
        view
        returns (Sender memory sender, ReserveInfo memory reserve)
    {
        sender = senders[addr];
        reserve = ReserveInfo(reserves[addr], claimedInRound[addr][roundsManager.currentRound()]);
    }

    function isUnlockInProgress(address addr) external view returns (bool) {
        return senders[addr].withdrawRound > 0;
    }

    function claimableReserve(address reserveHolder, address claimant)
        public
        view
        returns (uint256)
    {
        uint256 round = roundsManager.currentRound();
        uint256 allocation = reserves[reserveHolder] + claimedInRound[reserveHolder][round];
        uint256 claimed = claimedBy[reserveHolder][claimant][round];
        return allocation > claimed ? allocation - claimed : 0;
    }

    function getTicketHash(Ticket memory ticket) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                ticket.recipient,
                ticket.sender,
                ticket.faceValue,
                ticket.winProb,
                ticket.senderNonce,
                ticket.recipientRandHash,
                ticket.auxData
            )
        );
    }

    function redeemWinningTicket(Ticket memory ticket, bytes memory sig, uint256 recipientRand)
        external
    {
        bytes32 ticketHash = getTicketHash(ticket);
        require(ticket.recipient != address(0), "ticket recipient is null address");
        require(ticket.sender != address(0), "ticket sender is null address");
        require(ticket.auxData.length == 64, "invalid length for ticket auxData: must be 64 bytes");
        (uint256 creationRound, bytes32 creationRoundBlockHash) = abi.decode(
            ticket.auxData,
            (uint256, bytes32)
        );
        bytes32 blockHash = roundsManager.blockHashForRound(creationRound);
        require(blockHash != bytes32(0), "ticket creationRound does not have a block hash");
        require(blockHash == creationRoundBlockHash, "ticket creationRoundBlockHash invalid for creationRound");
        require(
            creationRound + ticketValidityPeriod > roundsManager.currentRound(),
            "ticket is expired"
        );
        require(
            keccak256(abi.encodePacked(recipientRand)) == ticket.recipientRandHash,
            "recipientRand does not match recipientRandHash"
        );
        require(!usedTickets[ticketHash], "ticket is used");
        require(_signer(ticketHash, sig) == ticket.sender, "invalid signature over ticket hash");
        require(
            uint256(keccak256(abi.encodePacked(sig, recipientRand))) < ticket.winProb,
            "ticket did not win"
        );
        usedTickets[ticketHash] = true;

        Sender storage sender = senders[ticket.sender];
        require(sender.deposit > 0 || reserves[ticket.sender] > 0, "sender deposit and reserve are zero");
        uint256 amount = ticket.faceValue;
        uint256 fromDeposit = amount <= sender.deposit ? amount : sender.deposit;
        sender.deposit -= fromDeposit;
        uint256 fromReserve = amount - fromDeposit;
        if (fromReserve > 0) {
            uint256 claimable = claimableReserve(ticket.sender, ticket.recipient);
            if (fromReserve > claimable) fromReserve = claimable;
            uint256 round = roundsManager.currentRound();
            reserves[ticket.sender] -= fromReserve;
            claimedInRound[ticket.sender][round] += fromReserve;
            claimedBy[ticket.sender][ticket.recipient][round] += fromReserve;
        }
        emit WinningTicketRedeemed(
            ticket.sender,
            ticket.recipient,
            ticket.faceValue,
            ticket.winProb,
            ticket.senderNonce,
            recipientRand,
            ticket.auxData
        );
        uint256 paid = fromDeposit + fromReserve;
        emit WinningTicketTransfer(ticket.sender, ticket.recipient, paid);
        (bool ok, ) = payable(ticket.recipient).call{value: paid}("");
        require(ok, "transfer failed");
    }

    function _fund(address addr, uint256 depositAmount, uint256 reserveAmount) private {
        require(
            msg.value == depositAmount + reserveAmount,
            "msg.value does not equal sum of deposit amount and reserve amount"
        );
        _addDeposit(addr, depositAmount);
        _addReserve(addr, reserveAmount);
    }

    // Funding an account that is unlocking cancels the unlock, as the real TicketBroker does.
    function _addDeposit(address addr, uint256 amount) private {
        senders[addr].deposit += amount;
        _cancelIfUnlocking(addr);
        emit DepositFunded(addr, amount);
    }

    function _addReserve(address addr, uint256 amount) private {
        reserves[addr] += amount;
        _cancelIfUnlocking(addr);
        emit ReserveFunded(addr, amount);
    }

    function _cancelIfUnlocking(address addr) private {
        if (senders[addr].withdrawRound > 0) {
            senders[addr].withdrawRound = 0;
            emit UnlockCancelled(addr);
        }
    }

    /// EIP-191 personal-sign recovery over the 32 hash bytes; V 27/28 and low S only.
    function _signer(bytes32 hash, bytes memory sig) private pure returns (address) {
        require(sig.length == 65, "invalid signature length");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        require(v == 27 || v == 28, "invalid signature v");
        require(
            uint256(s) <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0,
            "invalid signature s"
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", hash));
        return ecrecover(digest, v, r, s);
    }
}
