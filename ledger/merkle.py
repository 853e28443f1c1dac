"""Merkle trees over batches of events, as anchored on the chain.

The tree is the one of RFC 6962 / RFC 9162 (Certificate Transparency), so any
implementation of that RFC can check our proofs:

* a leaf is ``SHA-256(0x00 || event_hash)``, where ``event_hash`` is the 32 raw
  bytes of the event's hex hash (see :mod:`ledger.chain`);
* an inner node is ``SHA-256(0x01 || left || right)``;

the distinct prefixes keep a leaf from ever being passed off as a node (second
preimage). Leaves are in ``seq`` order, the first event of the batch first.
For ``n`` leaves the left subtree holds the largest power of two smaller than
``n``; built bottom-up, that is "pair neighbours, carry a lone last node up".

Proofs are built from pages: every aligned block of :data:`PAGE_SIZE` leaves
is a whole subtree of that tree, so storing one root per page is enough to
prove any event by re-hashing just its own page. That keeps a proof cheap in
a batch of a million events without storing two million nodes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PAGE_SIZE",
    "InclusionProof",
    "audit_path",
    "batch_root",
    "leaf_hash",
    "node_hash",
    "page_roots",
    "prove",
    "root_from_path",
    "root_of_nodes",
]

PAGE_SIZE = 256
"""Leaves per stored page root; a power of two, so pages are whole subtrees."""

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(event_hash: str) -> bytes:
    """The leaf for an event, from its 64-character hex hash."""
    raw = bytes.fromhex(event_hash)
    if len(raw) != 32:
        raise ValueError(f"event hash must be 32 bytes of hex, got {len(raw)} bytes")
    return _sha256(_LEAF + raw).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    paired = [_sha256(_NODE + a + b).digest() for a, b in zip(level[0::2], level[1::2])]
    if len(level) % 2:
        paired.append(level[-1])  # a lone last node is carried up unchanged
    return paired


def root_of_nodes(nodes: Sequence[bytes]) -> bytes:
    """The root of a tree whose lowest level is ``nodes`` (already hashed)."""
    if not nodes:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = list(nodes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def page_roots(event_hashes: Sequence[str]) -> list[bytes]:
    """One root per aligned page of :data:`PAGE_SIZE` events (the last may be short)."""
    if not event_hashes:
        raise ValueError("a batch needs at least one event")
    leaves = [_sha256(_LEAF + bytes.fromhex(h)).digest() for h in event_hashes]
    return [root_of_nodes(leaves[i : i + PAGE_SIZE]) for i in range(0, len(leaves), PAGE_SIZE)]


def batch_root(pages: Sequence[bytes]) -> bytes:
    """The batch's root from its page roots: the same root as over all the leaves."""
    return root_of_nodes(pages)


def audit_path(index: int, nodes: Sequence[bytes]) -> list[bytes]:
    """Siblings from ``nodes[index]`` up to the root, lowest first (RFC 9162 order)."""
    path: list[bytes] = []
    level = list(nodes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):  # else this node is carried up and has no sibling here
            path.append(level[sibling])
        level = _next_level(level)
        index //= 2
    return path


@dataclass(frozen=True)
class InclusionProof:
    """Where an event sits in an anchored batch, and the hashes that lead to its root."""

    leaf_index: int  # 0 for the batch's first event
    tree_size: int  # events in the batch
    path: tuple[str, ...]  # hex siblings, lowest first
    root: str  # hex

    def to_dict(self) -> dict:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "path": list(self.path),
            "root": self.root,
        }

    def verify(self, event_hash: str) -> bool:
        """True when ``event_hash`` at this position leads to :attr:`root`."""
        computed = root_from_path(leaf_hash(event_hash), self.leaf_index, self.tree_size, self.path)
        return computed is not None and computed.hex() == self.root


def prove(
    leaf_index: int, tree_size: int, page_event_hashes: Sequence[str], pages: Sequence[bytes]
) -> InclusionProof:
    """The proof for leaf ``leaf_index`` of a batch of ``tree_size`` events.

    ``page_event_hashes`` are the stored hashes of the events on that leaf's
    page, in seq order; ``pages`` are the batch's stored page roots. A page
    that does not hash to its stored root is refused, naming the page.
    """
    if not 0 <= leaf_index < tree_size:
        raise ValueError(f"leaf {leaf_index} is outside a batch of {tree_size} events")
    if len(pages) != -(-tree_size // PAGE_SIZE):
        raise ValueError(f"a batch of {tree_size} events has {-(-tree_size // PAGE_SIZE)} pages, not {len(pages)}")
    page, offset = divmod(leaf_index, PAGE_SIZE)
    expected = min(PAGE_SIZE, tree_size - page * PAGE_SIZE)
    if len(page_event_hashes) != expected:
        raise ValueError(f"page {page} holds {expected} events, {len(page_event_hashes)} were given")
    leaves = [leaf_hash(h) for h in page_event_hashes]
    if root_of_nodes(leaves) != pages[page]:
        raise ValueError(f"the events of page {page} do not hash to its stored root")
    path = audit_path(offset, leaves) + audit_path(page, pages)
    return InclusionProof(
        leaf_index=leaf_index,
        tree_size=tree_size,
        path=tuple(p.hex() for p in path),
        root=batch_root(pages).hex(),
    )


def root_from_path(leaf: bytes, leaf_index: int, tree_size: int, path: Sequence[str]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root that ``path`` leads to, or None if it cannot fit."""
    if not 0 <= leaf_index < tree_size:
        return None
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for hex_sibling in path:
        p = bytes.fromhex(hex_sibling)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
