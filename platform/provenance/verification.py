"""Recomputing the event chain from the database."""
from __future__ import annotations

from collections.abc import Callable

from ledger import chain

from .models import LineageEvent


def _find_seq_by_hash(h: str) -> int | None:
    return LineageEvent.objects.filter(hash=h).values_list("seq", flat=True).first()


def verify_event_log(on_progress: Callable[[int, int], None] | None = None) -> chain.ChainReport:
    """Walk every event in seq order and name the first one that was tampered with.

    on_progress(done, total) is called as the walk advances.
    """
    total = LineageEvent.objects.count()
    records = (
        event.as_record() for event in LineageEvent.objects.order_by("seq").iterator(chunk_size=2000)
    )
    progress = (lambda done: on_progress(done, total)) if on_progress else None
    return chain.verify_chain(records, find_seq_by_hash=_find_seq_by_hash, progress=progress)
