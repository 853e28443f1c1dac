"""Anchoring the event log on the chain: batch, send, settle, and survive the node going away.

One run (the beat task calls :func:`anchor_pending` every ANCHOR_INTERVAL_S):

1. **Reconcile** what the database believes with what the registry holds.
   Anchors the chain lost (a reorg, a node reset to older state) go back to
   "prepared" and are sent again, in order.
2. **Settle** the oldest unconfirmed anchor: if its root is on the chain it
   is confirmed from the contract's log, whatever happened to our receipt;
   if its transaction is still pending we wait; if the node no longer knows
   it (dropped), it is sent again.
3. **Batch** the events after the last anchor into one Merkle tree, write
   the anchor row (committed *before* sending), send it, wait for the receipt.

The contract refuses a range that overlaps an anchored one, so whatever
crashes where, an event is never anchored twice; and since every batch
starts right after the previous one, none is skipped. While the node is
down, events keep being recorded (recording never touches the chain), runs
back off exponentially, and the lag is on every steward's and auditor's page.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from ledger import merkle
from ledger.registry import ChainUnavailable, RegistryError

from . import chain
from .models import Anchor, AnchoringState, AnchorStatus, LineageEvent

log = logging.getLogger(__name__)

_ANCHOR_LOCK_KEY = 0x414E4348  # "ANCH": one anchoring run at a time, across processes
_thread_lock = threading.Lock()  # SQLite (development) runs in one process
BACKOFF_BASE_S = 2
GENESIS_ROOT = "0" * 64


class LedgerConflict(RegistryError):
    """The chain and the database disagree in a way that needs a person to look."""


@dataclass
class AnchorRun:
    skipped: str = ""  # why nothing was tried (backoff, another run busy)
    anchored: list[int] = field(default_factory=list)  # Anchor ids confirmed in this run
    resent: list[int] = field(default_factory=list)  # Anchor ids sent again (dropped or reorged)
    recovered: list[int] = field(default_factory=list)  # Anchor ids found on chain without our receipt
    pending: int | None = None  # an anchor still waiting for its transaction
    error: str = ""


@contextmanager
def _exclusive():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_ANCHOR_LOCK_KEY])
            got = cursor.fetchone()[0]
        try:
            yield got
        finally:
            if got:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [_ANCHOR_LOCK_KEY])
    else:
        got = _thread_lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                _thread_lock.release()


def anchor_pending(*, force: bool = False, receipt_timeout: float | None = None) -> AnchorRun:
    """One anchoring run; ``force`` ignores the backoff (an operator asking "now")."""
    run = AnchorRun()
    state = AnchoringState.get()
    now = timezone.now()
    if not force and state.next_attempt_at and now < state.next_attempt_at:
        run.skipped = f"backing off until {state.next_attempt_at.isoformat()}"
        return run
    timeout = settings.ANCHOR_RECEIPT_TIMEOUT_S if receipt_timeout is None else receipt_timeout
    with _exclusive() as got:
        if not got:
            run.skipped = "another anchoring run is in progress"
            return run
        try:
            conn = chain.connect(recheck=True)
            _reconcile(conn, run)
            while True:
                anchor = Anchor.objects.exclude(status=AnchorStatus.CONFIRMED).order_by("first_seq").first()
                if anchor is None:
                    anchor = _new_batch(conn)
                    if anchor is None:
                        break
                if not _settle(conn, anchor, run, timeout):
                    run.pending = anchor.pk
                    break
            _count_confirmations(conn)
        except ChainUnavailable as exc:
            _failed(state, str(exc))
            run.error = str(exc)
            return run
        except RegistryError as exc:
            _failed(state, str(exc))
            run.error = str(exc)
            log.error("anchoring stopped: %s", exc)
            return run
    AnchoringState.objects.filter(pk=state.pk).update(
        failures=0, next_attempt_at=None, last_error="", last_success_at=timezone.now()
    )
    return run


def _failed(state: AnchoringState, message: str) -> None:
    failures = state.failures + 1
    delay = min(settings.ANCHOR_BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 20))
    now = timezone.now()
    AnchoringState.objects.filter(pk=state.pk).update(
        failures=failures,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=message[:2000],
        last_error_at=now,
    )


def _reconcile(conn: chain.Connection, run: AnchorRun) -> None:
    """Put back to "prepared" every confirmed anchor the chain no longer holds."""
    confirmed = Anchor.objects.filter(registry=conn.registry_row, status=AnchorStatus.CONFIRMED)
    db_last = confirmed.aggregate(m=Max("last_seq"))["m"] or 0
    chain_last = conn.registry.last_seq()
    if chain_last >= db_last:
        return
    if chain_last:
        on_chain = conn.registry.anchor_of_seq(chain_last)
        ours = Anchor.objects.filter(last_seq=chain_last, root=on_chain.root if on_chain else "").first()
        if ours is None:
            raise LedgerConflict(
                f"the registry's last anchor ends at seq {chain_last} with a root this database did not anchor"
            )
    lost = list(confirmed.filter(first_seq__gt=chain_last).values_list("pk", flat=True))
    log.warning("the chain lost anchors %s (reorg or node reset); sending them again", lost)
    Anchor.objects.filter(pk__in=lost).update(
        status=AnchorStatus.PREPARED, tx_hash="", nonce=None, block_number=None, block_hash="",
        confirmations=0, confirmed_at=None,
    )
    run.resent.extend(lost)


def _new_batch(conn: chain.Connection) -> Anchor | None:
    last = Anchor.objects.order_by("-last_seq").first()
    first_seq = last.last_seq + 1 if last else 1
    prev_root = last.root if last else GENESIS_ROOT
    head = LineageEvent.objects.aggregate(m=Max("seq"))["m"] or 0
    if head < first_seq:
        return None
    last_seq = min(head, first_seq + settings.ANCHOR_MAX_BATCH - 1)
    hashes = _batch_hashes(first_seq, last_seq)
    pages = merkle.page_roots(hashes)
    root = merkle.batch_root(pages).hex()
    with transaction.atomic():
        return Anchor.objects.create(
            registry=conn.registry_row,
            first_seq=first_seq,
            last_seq=last_seq,
            root=root,
            prev_root=prev_root,
            page_roots=b"".join(pages),
        )


_READ_CHUNK = 20_000
"""Events read per query when batching: a plain cursor, in seq ranges, so memory stays bounded."""


def _batch_hashes(first_seq: int, last_seq: int) -> list[str]:
    """The stored hashes of events ``first_seq``..``last_seq``, in seq order.

    Read through a plain cursor rather than the ORM's iterator, whose per-row
    work was most of the read's time. seq is unique, so a range that returns as
    many rows as it spans holds every seq of it; any other range is walked row
    by row, as the whole batch once was, to name the first missing event.
    """
    table = connection.ops.quote_name(LineageEvent._meta.db_table)
    sql = f"SELECT seq, hash FROM {table} WHERE seq >= %s AND seq <= %s ORDER BY seq"
    hashes: list[str] = []
    with connection.cursor() as cursor:
        for lo in range(first_seq, last_seq + 1, _READ_CHUNK):
            hi = min(lo + _READ_CHUNK - 1, last_seq)
            cursor.execute(sql, [lo, hi])
            rows = cursor.fetchall()
            if len(rows) == hi - lo + 1 and first_seq + len(hashes) == lo:
                hashes.extend([event_hash for _seq, event_hash in rows])
                continue
            for seq, event_hash in rows:
                expected = first_seq + len(hashes)
                if seq != expected:
                    raise LedgerConflict(f"event {expected} is missing from the log; it cannot be anchored")
                hashes.append(event_hash)
    return hashes


def _settle(conn: chain.Connection, anchor: Anchor, run: AnchorRun, timeout: float) -> bool:
    """Bring one unconfirmed anchor to "confirmed"; False while it waits on the chain."""
    registry = conn.registry
    if _confirm_if_on_chain(conn, anchor):
        # Mined in an earlier run whose receipt never reached us (a crash, a timeout).
        run.recovered.append(anchor.pk)
        return True
    if anchor.tx_hash:
        receipt = registry.receipt(anchor.tx_hash)
        if receipt is None and registry.tx_known(anchor.tx_hash):
            receipt = registry.wait_for_receipt(anchor.tx_hash, timeout)
            if receipt is None:
                return False  # still pending; the next run looks again
        if receipt is not None and receipt["status"] == 1 and _confirm_if_on_chain(conn, anchor):
            run.anchored.append(anchor.pk)
            return True
        # Dropped, reverted, or mined in a block that was then reorged away: send again.
        run.resent.append(anchor.pk)
    expected_first = registry.last_seq() + 1
    if expected_first != anchor.first_seq or registry.last_root() != anchor.prev_root:
        raise LedgerConflict(
            f"anchor #{anchor.first_seq}–{anchor.last_seq} cannot follow the registry, whose next anchor "
            f"must start at seq {expected_first}"
        )
    tx_hash, nonce = registry.send_anchor(
        conn.account, root=anchor.root, first_seq=anchor.first_seq, last_seq=anchor.last_seq,
        prev_root=anchor.prev_root,
    )
    Anchor.objects.filter(pk=anchor.pk).update(
        status=AnchorStatus.SUBMITTED, tx_hash=tx_hash, nonce=nonce, attempts=anchor.attempts + 1,
        submitted_at=timezone.now(),
    )
    anchor.refresh_from_db()
    receipt = registry.wait_for_receipt(tx_hash, timeout)
    if receipt is None:
        return False
    if _confirm_if_on_chain(conn, anchor):  # also right when an earlier send of it won the race
        run.anchored.append(anchor.pk)
        return True
    if receipt["status"] != 1:
        raise LedgerConflict(f"the registry refused anchor #{anchor.first_seq}–{anchor.last_seq} (tx {tx_hash})")
    return False


def _confirm_if_on_chain(conn: chain.Connection, anchor: Anchor) -> bool:
    on_chain = conn.registry.anchor_of_root(anchor.root)
    if on_chain is None:
        return False
    if (on_chain.first_seq, on_chain.last_seq) != (anchor.first_seq, anchor.last_seq):
        raise LedgerConflict(
            f"root {anchor.root[:16]}… is anchored for seq {on_chain.first_seq}–{on_chain.last_seq}, "
            f"not {anchor.first_seq}–{anchor.last_seq}"
        )
    tx = conn.registry.find_anchor_tx(anchor.root, from_block=max(on_chain.block_number - 1, 0))
    head = conn.registry.head()
    Anchor.objects.filter(pk=anchor.pk).update(
        status=AnchorStatus.CONFIRMED,
        tx_hash=tx.tx_hash if tx else anchor.tx_hash,
        block_number=on_chain.block_number,
        block_hash=tx.block_hash if tx else "",
        confirmations=head - on_chain.block_number + 1,
        confirmed_at=timezone.now(),
    )
    return True


def _count_confirmations(conn: chain.Connection) -> None:
    """Refresh confirmations of anchors not yet final, and catch any whose block was replaced."""
    head = conn.registry.head()
    for anchor in Anchor.objects.filter(
        status=AnchorStatus.CONFIRMED, confirmations__lt=settings.CHAIN_CONFIRMATIONS
    ):
        current = conn.registry.block_hash(anchor.block_number)
        if anchor.block_hash and current != anchor.block_hash:
            continue  # a reorg: the next run's reconcile re-anchors it if the root is gone
        Anchor.objects.filter(pk=anchor.pk).update(confirmations=head - anchor.block_number + 1)


@dataclass(frozen=True)
class LedgerStatus:
    head_seq: int
    anchored_seq: int
    unanchored: int
    oldest_unanchored_at: str | None
    lag_seconds: float | None
    last_anchor_at: str | None
    anchors: int
    pending_anchor: dict | None
    chain: str
    failures: int
    last_error: str
    next_attempt_at: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ledger_status() -> LedgerStatus:
    """What stewards and auditors see: how far anchoring lags the log, and why."""
    head = LineageEvent.objects.aggregate(m=Max("seq"))["m"] or 0
    confirmed = Anchor.objects.filter(status=AnchorStatus.CONFIRMED)
    anchored = confirmed.aggregate(m=Max("last_seq"))["m"] or 0
    # Anchors confirm in order, so everything up to the highest confirmed seq is anchored.
    oldest = (
        LineageEvent.objects.filter(seq=anchored + 1).values_list("recorded_at", flat=True).first()
        if head > anchored
        else None
    )
    last_anchor = confirmed.aggregate(m=Max("confirmed_at"))["m"]
    pending = Anchor.objects.exclude(status=AnchorStatus.CONFIRMED).order_by("first_seq").first()
    state = AnchoringState.get()
    now = timezone.now()
    return LedgerStatus(
        head_seq=head,
        anchored_seq=anchored,
        unanchored=head - anchored,
        oldest_unanchored_at=oldest.isoformat() if oldest else None,
        lag_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
        last_anchor_at=last_anchor.isoformat() if last_anchor else None,
        anchors=confirmed.count(),
        pending_anchor=(
            {"first_seq": pending.first_seq, "last_seq": pending.last_seq, "status": pending.status,
             "tx_hash": pending.tx_hash, "attempts": pending.attempts}
            if pending else None
        ),
        chain=settings.CHAIN_RPC_URL,
        failures=state.failures,
        last_error=state.last_error,
        next_attempt_at=state.next_attempt_at.isoformat() if state.next_attempt_at else None,
    )


def first_unanchored_seq() -> int:
    return (Anchor.objects.filter(status=AnchorStatus.CONFIRMED).aggregate(m=Max("last_seq"))["m"] or 0) + 1

