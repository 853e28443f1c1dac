"""Appending to the event log, inside the caller's transaction (the outbox rule)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import models, transaction
from django.utils import timezone

from kernel.events import EventType
from ledger import chain

from .models import LineageEvent, LineageLink, format_recorded_at

# Any constant works; it names the one advisory lock that serialises appends on PostgreSQL.
_CHAIN_LOCK_KEY = 0x4D494C49  # "MILI"

_EVENT_TYPES = frozenset(EventType.values)  # what record() accepts; str() of a member is its plain value

INPUTS_KEY = "inputs"
"""Payload key listing the subjects an event's subject was made from: the lineage edges."""


def subject_of(obj: models.Model) -> str:
    return f"{obj._meta.label_lower}:{obj.pk}"


def actor_of(user) -> str:
    return user.actor_label if user is not None else "system"


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    actor: str
    subject: str
    payload: dict
    inputs: Sequence[str] = field(default=())


def record(
    event_type: str, *, actor: str, subject: str, payload: dict, inputs: Iterable[str] = ()
) -> LineageEvent:
    """Append one event to the chain. Must run inside the action's transaction.

    ``inputs`` names the artifacts (subjects) that ``subject`` was derived
    from; they become part of the hashed payload and edges of the lineage graph.
    """
    rec = record_many([NewEvent(event_type, actor, subject, payload, tuple(inputs))])[0]
    return LineageEvent.objects.get(seq=rec.seq)


def record_many(events: Sequence[NewEvent]) -> list[chain.EventRecord]:
    """Append several events in order, under one lock, in the caller's transaction.

    Appends are serialised (an advisory lock on PostgreSQL; SQLite transactions
    are IMMEDIATE, so its write lock already does it), which is what makes seq
    contiguous and prev_hash the hash of the event just before. Returns the
    appended events as the chain module's records.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError(
            "provenance.record must run inside the action's transaction.atomic block, "
            "so that the event and the state change commit together or not at all"
        )
    if not events:
        return []
    unknown = sorted({new.event_type for new in events} - _EVENT_TYPES)
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}: an action records a kernel.events.EventType")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    last = LineageEvent.objects.order_by("-seq").first()
    prev = last.as_record() if last else None
    now = timezone.now()
    at = format_recorded_at(now)
    records: list[chain.EventRecord] = []
    links: list[LineageLink] = []
    for new in events:
        payload = new.payload
        if new.inputs:
            if INPUTS_KEY in payload:
                raise ValueError(f"payload.{INPUTS_KEY} is reserved for the event's inputs; pass inputs=")
            payload = {**payload, INPUTS_KEY: sorted(set(new.inputs))}
        prev = chain.link(
            prev, event_type=str(new.event_type), actor=new.actor, subject=new.subject, payload=payload,
            recorded_at=at
        )
        records.append(prev)
        if new.inputs:
            links.extend(LineageLink(seq=prev.seq, subject=new.subject, source=src) for src in sorted(set(new.inputs)))
    if connection.vendor == "postgresql" and len(records) >= COPY_AT_LEAST:
        _copy_events(connection, records, now)
    else:
        LineageEvent.objects.bulk_create(
            [
                LineageEvent(
                    seq=r.seq, prev_hash=r.prev_hash, hash=r.hash, event_type=r.event_type, actor=r.actor,
                    subject=r.subject, payload=r.payload, recorded_at=now, hash_version=r.version,
                )
                for r in records
            ],
            batch_size=2000,
        )
    if links:
        LineageLink.objects.bulk_create(links, batch_size=2000)
    return records


COPY_AT_LEAST = 256
"""Batches this large go in through PostgreSQL's COPY, several times faster than INSERT."""

_EVENT_COLUMNS = (
    "seq", "prev_hash", "hash", "event_type", "actor", "subject", "payload", "recorded_at", "hash_version",
)


def _copy_events(connection, records: list[chain.EventRecord], recorded_at) -> None:
    table = LineageEvent._meta.db_table
    at = recorded_at.isoformat()  # adapted once, not once per row
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
            for r in records:
                copy.write_row((r.seq, r.prev_hash, r.hash, r.event_type, r.actor, r.subject, r.payload, at, r.version))
