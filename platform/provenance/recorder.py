"""Appending to the event log, inside the caller's transaction (the outbox rule)."""
from __future__ import annotations

from django.db import models, transaction
from django.utils import timezone

from ledger import chain

from .models import LineageEvent, format_recorded_at

# Any constant works; it names the one advisory lock that serialises appends on PostgreSQL.
_CHAIN_LOCK_KEY = 0x4D494C49  # "MILI"


def subject_of(obj: models.Model) -> str:
    return f"{obj._meta.label_lower}:{obj.pk}"


def actor_of(user) -> str:
    return user.actor_label if user is not None else "system"


def record(event_type: str, *, actor: str, subject: str, payload: dict) -> LineageEvent:
    """Append one event to the chain. Must run inside the action's transaction.

    Appends are serialised (an advisory lock on PostgreSQL; SQLite transactions
    are IMMEDIATE, so its write lock already does it), which is what makes seq
    contiguous and prev_hash the hash of the event just before.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError(
            "provenance.record must run inside the action's transaction.atomic block, "
            "so that the event and the state change commit together or not at all"
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    last = LineageEvent.objects.order_by("-seq").first()
    now = timezone.now()
    rec = chain.link(
        last.as_record() if last else None,
        event_type=event_type,
        actor=actor,
        subject=subject,
        payload=payload,
        recorded_at=format_recorded_at(now),
    )
    return LineageEvent.objects.create(
        seq=rec.seq,
        prev_hash=rec.prev_hash,
        hash=rec.hash,
        event_type=rec.event_type,
        actor=rec.actor,
        subject=rec.subject,
        payload=rec.payload,
        recorded_at=now,
    )
