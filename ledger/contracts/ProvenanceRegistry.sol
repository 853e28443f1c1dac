// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ProvenanceRegistry
/// @notice Anchors the Merkle roots of consecutive batches of the platform's hash-chained
/// event log. Each anchor covers the event sequence numbers [firstSeq, lastSeq] and names
/// the root anchored before it, so the anchors form a chain of their own: no range can be
/// skipped, covered twice or re-ordered, and an auditor can find the anchor of any event.
/// @dev Consortium-style: one owner manages a set of writers (the platform's signing
/// keys). Every refusal is a custom error carrying the values involved, so the client
/// can say exactly why an anchor was refused instead of "execution reverted".
contract ProvenanceRegistry {
    struct Anchor {
        bytes32 root;
        bytes32 prevRoot;
        // The four 64-bit fields share one storage slot; the order is part of the ABI.
        uint64 firstSeq;
        uint64 lastSeq;
        uint64 blockNumber;
        uint64 timestamp;
        address writer;
    }

    address public owner;

    mapping(address => bool) private _writers;
    Anchor[] private _anchors;
    // index + 1, so that 0 means "never anchored" without a second mapping.
    mapping(bytes32 => uint256) private _indexPlusOne;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event WriterAdded(address indexed writer, address indexed by);
    event WriterRemoved(address indexed writer, address indexed by);
    event Anchored(
        uint256 indexed index,
        bytes32 indexed root,
        uint64 firstSeq,
        uint64 lastSeq,
        bytes32 prevRoot,
        address indexed writer
    );

    error NotOwner(address caller);
    error NotWriter(address caller);
    error ZeroAddress();
    error ZeroRoot();
    error EmptyRange(uint64 firstSeq, uint64 lastSeq);
    error SequenceOverlap(uint64 expectedFirstSeq, uint64 firstSeq);
    error SequenceGap(uint64 expectedFirstSeq, uint64 firstSeq);
    error WrongPrevRoot(bytes32 expected, bytes32 given);
    error RootAlreadyAnchored(bytes32 root);
    error IndexOutOfRange(uint256 index, uint256 count);
    error SeqNotAnchored(uint64 seq);
    error RootNotAnchored(bytes32 root);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor() {
        // The deployer can anchor at once; a consortium adds its other writers later.
        owner = msg.sender;
        _writers[msg.sender] = true;
        emit OwnershipTransferred(address(0), msg.sender);
        emit WriterAdded(msg.sender, msg.sender);
    }

    // ---- administration ------------------------------------------------------------

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @dev Idempotent, and the event is emitted only on a change, so the event log is
    /// an exact history of who could write when.
    function addWriter(address writer) external onlyOwner {
        if (writer == address(0)) revert ZeroAddress();
        if (!_writers[writer]) {
            _writers[writer] = true;
            emit WriterAdded(writer, msg.sender);
        }
    }

    function removeWriter(address writer) external onlyOwner {
        if (_writers[writer]) {
            _writers[writer] = false;
            emit WriterRemoved(writer, msg.sender);
        }
    }

    function isWriter(address account) external view returns (bool) {
        return _writers[account];
    }

    // ---- anchoring -----------------------------------------------------------------

    /// @notice Anchor the root of the events firstSeq..lastSeq (inclusive). The range must
    /// start right after the last anchored one (at 1 for the first anchor) and prevRoot
    /// must be the last anchored root (zero for the first), so a writer working from a
    /// stale view of the chain is refused instead of forking the history.
    function anchor(bytes32 root, uint64 firstSeq, uint64 lastSeq, bytes32 prevRoot)
        external
        returns (uint256 index)
    {
        if (!_writers[msg.sender]) revert NotWriter(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (lastSeq < firstSeq) revert EmptyRange(firstSeq, lastSeq);

        index = _anchors.length;
        uint64 expectedFirstSeq = 1;
        bytes32 expectedPrevRoot;
        if (index != 0) {
            Anchor storage last = _anchors[index - 1];
            expectedFirstSeq = last.lastSeq + 1;
            expectedPrevRoot = last.root;
        }
        if (firstSeq < expectedFirstSeq) revert SequenceOverlap(expectedFirstSeq, firstSeq);
        if (firstSeq > expectedFirstSeq) revert SequenceGap(expectedFirstSeq, firstSeq);
        if (prevRoot != expectedPrevRoot) revert WrongPrevRoot(expectedPrevRoot, prevRoot);
        // Two batches with the same root would make anchorOfRoot ambiguous.
        if (_indexPlusOne[root] != 0) revert RootAlreadyAnchored(root);

        _anchors.push(
            Anchor({
                root: root,
                prevRoot: prevRoot,
                firstSeq: firstSeq,
                lastSeq: lastSeq,
                blockNumber: uint64(block.number),
                timestamp: uint64(block.timestamp),
                writer: msg.sender
            })
        );
        _indexPlusOne[root] = index + 1;
        emit Anchored(index, root, firstSeq, lastSeq, prevRoot, msg.sender);
    }

    // ---- reads ---------------------------------------------------------------------

    function anchorCount() external view returns (uint256) {
        return _anchors.length;
    }

    function anchorAt(uint256 index) external view returns (Anchor memory) {
        if (index >= _anchors.length) revert IndexOutOfRange(index, _anchors.length);
        return _anchors[index];
    }

    /// @notice The last anchored sequence number; 0 before the first anchor.
    function lastSeq() external view returns (uint64) {
        uint256 n = _anchors.length;
        return n == 0 ? 0 : _anchors[n - 1].lastSeq;
    }

    /// @notice The last anchored root, the prevRoot the next anchor must name.
    function lastRoot() external view returns (bytes32) {
        uint256 n = _anchors.length;
        return n == 0 ? bytes32(0) : _anchors[n - 1].root;
    }

    /// @notice The anchor whose range holds seq.
    /// @dev The ranges are contiguous from 1 and ordered, so a binary search for the first
    /// anchor with lastSeq >= seq finds it in O(log n) reads.
    function anchorOfSeq(uint64 seq) external view returns (uint256 index, Anchor memory) {
        uint256 hi = _anchors.length;
        if (seq == 0 || hi == 0 || _anchors[hi - 1].lastSeq < seq) revert SeqNotAnchored(seq);
        uint256 lo = 0;
        hi -= 1;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_anchors[mid].lastSeq < seq) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return (lo, _anchors[lo]);
    }

    function anchorOfRoot(bytes32 root) external view returns (uint256 index, Anchor memory) {
        uint256 indexPlusOne = _indexPlusOne[root];
        if (indexPlusOne == 0) revert RootNotAnchored(root);
        index = indexPlusOne - 1;
        return (index, _anchors[index]);
    }

    function isAnchored(bytes32 root) external view returns (bool) {
        return _indexPlusOne[root] != 0;
    }
}
