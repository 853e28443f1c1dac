"""Recomputing the event chain from the database, and every anchored root from it."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ledger import chain, merkle
from ledger.registry import RegistryError

from .models import Anchor, AnchorStatus, LineageEvent
from .queries import seq_by_hash


def verify_event_log(on_progress: Callable[[int, int], None] | None = None) -> chain.ChainReport:
    """Walk every event in seq order and name the first one that was tampered with.

    on_progress(done, total) is called as the walk advances.
    """
    total = LineageEvent.objects.count()
    records = (
        event.as_record() for event in LineageEvent.objects.order_by("seq").iterator(chunk_size=2000)
    )
    progress = (lambda done: on_progress(done, total)) if on_progress else None
    report = chain.verify_chain(records, find_seq_by_hash=seq_by_hash, progress=progress)
    if report.tamper is None:
        tamper = verify_anchored_roots(report.head_seq)
        if tamper is not None:
            report = dataclasses.replace(report, ok=False, tamper=tamper)
    return report


def verify_anchored_roots(head_seq: int) -> chain.Tamper | None:
    """Rebuild every anchored root from the stored hashes and compare it with the registry.

    This is what the hash chain alone cannot show: the newest events truncated,
    or a correctly chained forgery in place of anchored events. Without any
    anchor, or with the chain unreachable (then the lag page says so), there is
    nothing to compare and None is returned.
    """
    from . import chain as chain_connection
    from .anchoring import _batch_hashes

    if not Anchor.objects.filter(status=AnchorStatus.CONFIRMED).exists():
        return None
    try:
        registry = chain_connection.connect().registry
        chain_last = registry.last_seq()
    except RegistryError:
        return None
    if chain_last > head_seq:
        return chain.Tamper(
            "deleted",
            head_seq + 1,
            f"events {head_seq + 1} to {chain_last} were anchored on the chain but are gone from the log",
        )
    seq = 1
    while seq <= chain_last:
        on_chain = registry.anchor_of_seq(seq)
        try:
            hashes = _batch_hashes(on_chain.first_seq, on_chain.last_seq)
        except RegistryError as exc:  # a gap inside an anchored range
            return chain.Tamper("deleted", seq, str(exc))
        root = merkle.batch_root(merkle.page_roots(hashes)).hex()
        if root != on_chain.root:
            return chain.Tamper(
                "edited",
                on_chain.first_seq,
                f"events {on_chain.first_seq} to {on_chain.last_seq} no longer hash to the root anchored on the "
                f"chain in block {on_chain.block_number}: they were replaced after anchoring",
            )
        seq = on_chain.last_seq + 1
    return None
