"""Celery tasks of the provenance app (the verification's work is provenance.worker)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="provenance.verify_event_log")
def verify_event_log_task(task_id: str) -> None:
    # Imported here, not at the top: a worker starts (and recovers after a crash) sooner.
    from .worker import verify

    verify(task_id)


@shared_task(name="provenance.anchor_events", ignore_result=True, acks_late=False)
def anchor_events_task() -> dict:
    """Run by Celery beat every ANCHOR_INTERVAL_S: batch new events and anchor them.

    Not acks_late: a run that dies is simply the next beat's work, and two
    runs never overlap (anchoring takes an advisory lock).
    """
    from .anchoring import anchor_pending

    run = anchor_pending()
    return {"anchored": run.anchored, "resent": run.resent, "recovered": run.recovered,
            "pending": run.pending, "skipped": run.skipped, "error": run.error}
