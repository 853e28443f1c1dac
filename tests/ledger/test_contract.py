"""ProvenanceRegistry on both chain backends: who may write, which anchors it refuses
and why, and what an auditor reads back."""

import pytest
from ledger_chain_support import random_root, refusal
from web3.logs import DISCARD

pytestmark = pytest.mark.ledger

ZERO = bytes(32)


def anchor_batches(chain, registry, writer, ranges, roots=None):
    """Anchor consecutive batches (under random roots unless given); returns their
    roots and receipts."""
    roots = list(roots) if roots is not None else [random_root() for _ in ranges]
    receipts, prev = [], registry.functions.lastRoot().call()
    for (first, last), root in zip(ranges, roots, strict=True):
        receipt = chain.transact(writer, registry.functions.anchor(root, first, last, prev))
        assert receipt.status == 1
        receipts.append(receipt)
        prev = root
    return roots, receipts


def as_dict(anchor_tuple):
    root, prev_root, first, last, block_number, timestamp, writer = anchor_tuple
    return {"root": root, "prevRoot": prev_root, "firstSeq": first, "lastSeq": last,
            "blockNumber": block_number, "timestamp": timestamp, "writer": writer}


# ---- permissions ---------------------------------------------------------------------


def test_deployer_is_owner_and_first_writer(chain, owner):
    registry, receipt = chain.deploy_registry(owner)
    assert registry.functions.owner().call() == owner.address
    assert registry.functions.isWriter(owner.address).call() is True
    assert registry.functions.anchorCount().call() == 0
    assert registry.functions.lastSeq().call() == 0
    assert registry.functions.lastRoot().call() == ZERO
    (transferred,) = registry.events.OwnershipTransferred().process_receipt(receipt, errors=DISCARD)
    assert transferred.args == {"previousOwner": "0x" + "0" * 40, "newOwner": owner.address}
    (added,) = registry.events.WriterAdded().process_receipt(receipt, errors=DISCARD)
    assert added.args == {"writer": owner.address, "by": owner.address}


def test_non_writer_cannot_anchor(chain, registry):
    stranger = chain.new_account()
    call = registry.functions.anchor(random_root(), 1, 5, ZERO)
    assert refusal(call, stranger) == ("NotWriter", {"caller": stranger.address})


def test_refused_anchor_sent_anyway_fails_on_chain_and_changes_nothing(chain, registry):
    # The check is the contract's, not the client's gas estimate.
    stranger = chain.new_account()
    receipt = chain.transact(stranger, registry.functions.anchor(random_root(), 1, 5, ZERO), gas=300_000)
    assert receipt.status == 0
    assert registry.functions.anchorCount().call() == 0


def test_only_the_owner_manages_writers_and_ownership(chain, registry):
    stranger = chain.new_account()
    for call in (
        registry.functions.addWriter(stranger.address),
        registry.functions.removeWriter(stranger.address),
        registry.functions.transferOwnership(stranger.address),
    ):
        assert refusal(call, stranger) == ("NotOwner", {"caller": stranger.address})
    assert registry.functions.isWriter(stranger.address).call() is False


def test_added_writer_can_anchor_and_removed_writer_cannot(chain, owner, registry):
    writer = chain.new_account()
    receipt = chain.transact(owner, registry.functions.addWriter(writer.address))
    (added,) = registry.events.WriterAdded().process_receipt(receipt, errors=DISCARD)
    assert added.args == {"writer": writer.address, "by": owner.address}
    assert registry.functions.isWriter(writer.address).call() is True

    (root,), _ = anchor_batches(chain, registry, writer, [(1, 3)])
    assert registry.functions.anchorAt(0).call()[-1] == writer.address

    receipt = chain.transact(owner, registry.functions.removeWriter(writer.address))
    (removed,) = registry.events.WriterRemoved().process_receipt(receipt, errors=DISCARD)
    assert removed.args == {"writer": writer.address, "by": owner.address}
    assert registry.functions.isWriter(writer.address).call() is False
    call = registry.functions.anchor(random_root(), 4, 6, root)
    assert refusal(call, writer) == ("NotWriter", {"caller": writer.address})


def test_transferred_ownership_moves_writer_management(chain, owner, registry):
    successor = chain.new_account()
    assert refusal(registry.functions.transferOwnership("0x" + "0" * 40), owner) == ("ZeroAddress", {})
    receipt = chain.transact(owner, registry.functions.transferOwnership(successor.address))
    (transferred,) = registry.events.OwnershipTransferred().process_receipt(receipt, errors=DISCARD)
    assert transferred.args == {"previousOwner": owner.address, "newOwner": successor.address}
    assert registry.functions.owner().call() == successor.address

    newcomer = chain.new_account()
    assert refusal(registry.functions.addWriter(newcomer.address), owner) == (
        "NotOwner", {"caller": owner.address})
    assert refusal(registry.functions.addWriter("0x" + "0" * 40), successor) == ("ZeroAddress", {})
    chain.transact(successor, registry.functions.addWriter(newcomer.address))
    assert registry.functions.isWriter(newcomer.address).call() is True
    # Ownership alone does not make a writer; the old owner keeps its writer role.
    assert registry.functions.isWriter(successor.address).call() is False
    assert registry.functions.isWriter(owner.address).call() is True


# ---- what an anchor must satisfy --------------------------------------------------------


def test_first_anchor_starts_at_one_after_a_zero_prev_root(owner, registry):
    assert refusal(registry.functions.anchor(random_root(), 2, 9, ZERO), owner) == (
        "SequenceGap", {"expectedFirstSeq": 1, "firstSeq": 2})
    assert refusal(registry.functions.anchor(random_root(), 0, 9, ZERO), owner) == (
        "SequenceOverlap", {"expectedFirstSeq": 1, "firstSeq": 0})
    stray = random_root()
    assert refusal(registry.functions.anchor(random_root(), 1, 9, stray), owner) == (
        "WrongPrevRoot", {"expected": ZERO, "given": stray})


def test_gap_is_refused(chain, owner, registry):
    anchor_batches(chain, registry, owner, [(1, 10)])
    prev = registry.functions.lastRoot().call()
    assert refusal(registry.functions.anchor(random_root(), 12, 20, prev), owner) == (
        "SequenceGap", {"expectedFirstSeq": 11, "firstSeq": 12})


def test_overlap_is_refused(chain, owner, registry):
    anchor_batches(chain, registry, owner, [(1, 10)])
    prev = registry.functions.lastRoot().call()
    for first in (10, 1):
        assert refusal(registry.functions.anchor(random_root(), first, 20, prev), owner) == (
            "SequenceOverlap", {"expectedFirstSeq": 11, "firstSeq": first})


def test_wrong_prev_root_is_refused(chain, owner, registry):
    (first_root, second_root), _ = anchor_batches(chain, registry, owner, [(1, 10), (11, 20)])
    # A writer that missed the second anchor names the first root: refused, not forked.
    for stale in (first_root, ZERO):
        assert refusal(registry.functions.anchor(random_root(), 21, 30, stale), owner) == (
            "WrongPrevRoot", {"expected": second_root, "given": stale})


def test_zero_root_is_refused(owner, registry):
    assert refusal(registry.functions.anchor(ZERO, 1, 10, ZERO), owner) == ("ZeroRoot", {})


def test_duplicate_root_is_refused(chain, owner, registry):
    (root,), _ = anchor_batches(chain, registry, owner, [(1, 10)])
    assert refusal(registry.functions.anchor(root, 11, 20, root), owner) == (
        "RootAlreadyAnchored", {"root": root})


def test_empty_range_is_refused(chain, owner, registry):
    anchor_batches(chain, registry, owner, [(1, 10)])
    prev = registry.functions.lastRoot().call()
    assert refusal(registry.functions.anchor(random_root(), 11, 10, prev), owner) == (
        "EmptyRange", {"firstSeq": 11, "lastSeq": 10})


def test_a_single_event_batch_is_accepted(chain, owner, registry):
    anchor_batches(chain, registry, owner, [(1, 1), (2, 2)])
    assert registry.functions.lastSeq().call() == 2


# ---- reads ---------------------------------------------------------------------------


RANGES = [(1, 10), (11, 11), (12, 40), (41, 41), (42, 100)]


def test_anchor_of_seq_finds_the_batch_at_every_boundary(chain, owner, registry):
    assert refusal(registry.functions.anchorOfSeq(1), owner) == ("SeqNotAnchored", {"seq": 1})
    roots, _ = anchor_batches(chain, registry, owner, RANGES)
    for index, (first, last) in enumerate(RANGES):
        for seq in {first, (first + last) // 2, last}:
            found_index, found = registry.functions.anchorOfSeq(seq).call()
            assert found_index == index, seq
            assert as_dict(found)["root"] == roots[index]
            assert (as_dict(found)["firstSeq"], as_dict(found)["lastSeq"]) == (first, last)
    for seq in (0, 101, 2**64 - 1):
        assert refusal(registry.functions.anchorOfSeq(seq), owner) == ("SeqNotAnchored", {"seq": seq})


def test_reads_by_root_and_index(chain, owner, registry):
    roots, receipts = anchor_batches(chain, registry, owner, RANGES)
    assert registry.functions.anchorCount().call() == len(RANGES)
    assert registry.functions.lastSeq().call() == 100
    assert registry.functions.lastRoot().call() == roots[-1]
    for index, ((first, last), root, receipt) in enumerate(zip(RANGES, roots, receipts, strict=True)):
        block = chain.w3.eth.get_block(receipt.blockNumber)
        expected = {"root": root, "prevRoot": roots[index - 1] if index else ZERO, "firstSeq": first,
                    "lastSeq": last, "blockNumber": receipt.blockNumber, "timestamp": block.timestamp,
                    "writer": owner.address}
        assert as_dict(registry.functions.anchorAt(index).call()) == expected
        found_index, found = registry.functions.anchorOfRoot(root).call()
        assert (found_index, as_dict(found)) == (index, expected)
        assert registry.functions.isAnchored(root).call() is True
    unknown = random_root()
    assert registry.functions.isAnchored(unknown).call() is False
    assert refusal(registry.functions.anchorOfRoot(unknown), owner) == ("RootNotAnchored", {"root": unknown})
    assert refusal(registry.functions.anchorAt(len(RANGES)), owner) == (
        "IndexOutOfRange", {"index": len(RANGES), "count": len(RANGES)})


def test_anchored_event_names_the_batch(chain, owner, registry):
    (first_root, root), (_, receipt) = anchor_batches(chain, registry, owner, [(1, 7), (8, 20)])
    (event,) = registry.events.Anchored().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"index": 1, "root": root, "firstSeq": 8, "lastSeq": 20, "prevRoot": first_root,
                          "writer": owner.address}
    # index, root and writer are topics, so a node can filter anchors by them.
    logs = registry.events.Anchored().get_logs(from_block=0, argument_filters={"root": root})
    assert [log.args["index"] for log in logs] == [1]


def test_anchor_gas_stays_flat_as_anchors_accumulate(chain, owner, registry):
    # Each anchor writes fresh storage and reads only the last anchor, so its cost
    # must not grow with the number of anchors already stored.
    # Roots without zero bytes, so every call's calldata costs the same.
    ranges = [(i * 10 + 1, i * 10 + 10) for i in range(6)]
    roots = [bytes([i + 1]) * 32 for i in range(6)]
    _, receipts = anchor_batches(chain, registry, owner, ranges, roots=roots)
    later = {receipt.gasUsed for receipt in receipts[1:]}
    assert len(later) == 1, later
    assert later.pop() < 160_000
