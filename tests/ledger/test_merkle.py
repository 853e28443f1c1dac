"""The anchored Merkle tree: RFC 6962 roots, paged proofs, and proofs that fail when they should."""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle

pytestmark = pytest.mark.ledger


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written recursively as the RFC states it."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(rfc6962_root(leaves[:k]), rfc6962_root(leaves[k:]))


def hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def proof_for(index: int, event_hashes: list[str]) -> merkle.InclusionProof:
    pages = merkle.page_roots(event_hashes)
    page = index // merkle.PAGE_SIZE
    on_page = event_hashes[page * merkle.PAGE_SIZE : (page + 1) * merkle.PAGE_SIZE]
    return merkle.prove(index, len(event_hashes), on_page, pages)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 512, 513, 1000, 4097])
def test_paged_root_is_the_rfc6962_root_of_all_leaves(n):
    event_hashes = hashes(n)
    leaves = [merkle.leaf_hash(h) for h in event_hashes]
    assert merkle.batch_root(merkle.page_roots(event_hashes)) == rfc6962_root(leaves)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 1500), data=st.data())
def test_every_leaf_proves_into_its_root_and_no_other_leaf_does(n, data):
    event_hashes = hashes(n)
    index = data.draw(st.integers(0, n - 1))
    proof = proof_for(index, event_hashes)
    assert proof.verify(event_hashes[index])
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index))
        assert not proof.verify(event_hashes[other])
    # The same path claimed for another position fails (the tree size itself is bound
    # by the anchored seq range, so a proof is only read with the anchored size).
    if n > 1:
        moved = merkle.InclusionProof((index + 1) % n, n, proof.path, proof.root)
        assert not moved.verify(event_hashes[index])


def test_a_leaf_cannot_pass_as_a_node():
    # Domain separation: the two children of the root, offered as a single "leaf", do not verify.
    event_hashes = hashes(2)
    leaves = [merkle.leaf_hash(h) for h in event_hashes]
    root = merkle.node_hash(*leaves)
    forged_leaf = (leaves[0] + leaves[1]).hex()
    assert merkle.root_from_path(merkle.leaf_hash(forged_leaf[:64]), 0, 1, []) != root


def test_a_tampered_page_is_refused_naming_the_page():
    event_hashes = hashes(600)
    pages = merkle.page_roots(event_hashes)
    edited = list(event_hashes[256:512])
    edited[3] = hashlib.sha256(b"forged").hexdigest()
    with pytest.raises(ValueError, match="page 1 do not hash"):
        merkle.prove(260, 600, edited, pages)
    with pytest.raises(ValueError, match="page 1 holds 256 events, 255"):
        merkle.prove(260, 600, event_hashes[256:511], pages)
    with pytest.raises(ValueError, match="outside a batch of 600"):
        merkle.prove(600, 600, event_hashes[512:], pages)


def test_bad_hashes_are_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.leaf_hash("ab")
    with pytest.raises(ValueError, match="at least one"):
        merkle.page_roots([])
