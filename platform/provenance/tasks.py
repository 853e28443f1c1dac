"""Celery tasks of the provenance app."""
from __future__ import annotations

from celery import shared_task
from django.utils.translation import gettext_noop


@shared_task(name="provenance.verify_event_log")
def verify_event_log_task(task_id: str) -> None:
    # Imported here, not at the top: a worker starts (and recovers after a crash) sooner.
    from progress.actions import run_tracked
    from progress.models import TaskProgress

    from .actions import record_verification
    from .verification import verify_event_log

    task = TaskProgress.objects.select_related("started_by").get(pk=task_id)

    def work(report) -> dict:
        report(0, gettext_noop("reading events"))

        def on_progress(done: int, total: int) -> None:
            report(100.0 * done / max(total, 1), gettext_noop("checked %(done)s of %(total)s events"),
                   done=done, total=total)

        return verify_event_log(on_progress).to_dict()

    run_tracked(
        task_id,
        work,
        commit=lambda result: record_verification(actor=task.started_by, report=result),
    )


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
