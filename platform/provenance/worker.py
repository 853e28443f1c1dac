"""The event-log verification's work, on a worker."""
from __future__ import annotations

from django.utils.translation import gettext_noop

from progress.actions import run_tracked
from progress.models import TaskProgress

from .actions import record_verification
from .verification import verify_event_log


def verify(task_id: str) -> None:
    """Walk the whole event log's hash chain, with visible progress, and record the verdict:
    the task `provenance.verify_event_log`."""
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
