"""The platform's registry client (ledger/registry.py) on both backends: the same reads,
writes and refusals whether the chain is in-process or a JSON-RPC node."""
from __future__ import annotations

import pytest

from ledger.registry import Registry, Reverted

pytestmark = pytest.mark.ledger


@pytest.fixture
def client(chain, owner):
    registry, tx = Registry.deploy(chain.w3, owner)
    assert tx.block_number >= 1 and tx.tx_hash.startswith("0x")
    return registry


def test_reads_and_writes_agree_on_both_backends(chain, client, owner):
    assert (client.last_seq(), client.anchor_count()) == (0, 0)
    assert client.anchor_of_seq(1) is None and client.anchor_of_root("11" * 32) is None
    tx_hash, nonce = client.send_anchor(owner, root="11" * 32, first_seq=1, last_seq=5, prev_root="00" * 32)
    assert client.wait_for_receipt(tx_hash, timeout=30)["status"] == 1 and client.tx_known(tx_hash)
    tx_hash, _ = client.send_anchor(owner, root="22" * 32, first_seq=6, last_seq=9, prev_root="11" * 32)
    client.wait_for_receipt(tx_hash, timeout=30)
    assert (client.last_seq(), client.last_root(), client.anchor_count()) == (9, "22" * 32, 2)
    for seq, root in ((1, "11"), (5, "11"), (6, "22"), (9, "22")):
        anchor = client.anchor_of_seq(seq)
        assert anchor.root == root * 32 and anchor.writer.lower() == owner.address.lower()
    assert client.anchor_of_seq(10) is None
    by_root = client.anchor_of_root("22" * 32)
    assert (by_root.index, by_root.first_seq, by_root.last_seq, by_root.prev_root) == (1, 6, 9, "11" * 32)
    found = client.find_anchor_tx("22" * 32)
    assert found.tx_hash == tx_hash and found.block_number == by_root.block_number
    assert client.block_hash(found.block_number) == found.block_hash


def test_refusals_name_the_rule(chain, client, owner):
    client.wait_for_receipt(
        client.send_anchor(owner, root="11" * 32, first_seq=1, last_seq=5, prev_root="00" * 32)[0], timeout=30
    )
    with pytest.raises(Reverted) as overlap:
        client.send_anchor(owner, root="33" * 32, first_seq=3, last_seq=7, prev_root="11" * 32)
    assert (overlap.value.name, overlap.value.args_) == ("SequenceOverlap", (6, 3))
    with pytest.raises(Reverted) as stranger:
        client.send_anchor(chain.new_account(), root="33" * 32, first_seq=6, last_seq=7, prev_root="11" * 32)
    assert stranger.value.name == "NotWriter"
