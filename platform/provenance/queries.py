"""Reads of the event log that more than one check makes."""
from __future__ import annotations

from .models import LineageEvent


def seq_by_hash(h: str) -> int | None:
    """The sequence number of the event whose hash is `h`, or None: how a chain walk tells an
    event moved within the log from one inserted into it."""
    return LineageEvent.objects.filter(hash=h).values_list("seq", flat=True).first()
