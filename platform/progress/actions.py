"""Queueing, running and finishing tracked tasks.

Progress rows are telemetry, so ticking the bar writes no lineage event; the
domain side effect a task exists for does, through its own action, in the same
transaction that marks the task finished. That is what makes tasks idempotent:
a retried task whose row is already finished returns without running, and a
task that died before finishing had produced no side effect yet.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import FINISHED, TaskProgress, TaskStatus

log = logging.getLogger(__name__)

# Work reports progress as (percent 0-100, stage text).
Reporter = Callable[[float, str], None]


def queue_task(kind: str, *, label: str, actor, dispatch: Callable[[str], Any]) -> TaskProgress:
    """Create the progress row and hand its id to Celery once the row is committed."""
    with transaction.atomic():
        task = TaskProgress.objects.create(
            kind=kind, label=label, started_by=actor, organisation=actor.organisation
        )
        task_id = str(task.pk)
        transaction.on_commit(lambda: dispatch(task_id))
    return task


def _report(task_id: str, percent: float, stage: str) -> None:
    TaskProgress.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(
        percent=max(0.0, min(100.0, percent)), stage=stage[:200], updated_at=timezone.now()
    )


def run_tracked(
    task_id: str,
    work: Callable[[Reporter], dict],
    *,
    commit: Callable[[dict], None] | None = None,
    min_interval_s: float = 0.2,
) -> TaskProgress:
    """Run `work` for a queued task, then `commit(result)` and mark it done, atomically."""
    with transaction.atomic():
        task = TaskProgress.objects.select_for_update().get(pk=task_id)
        if task.status in FINISHED:
            log.info("task %s already %s; a retry changes nothing", task_id, task.status)
            return task
        task.status = TaskStatus.RUNNING
        task.attempts += 1
        task.started_at = task.started_at or timezone.now()
        task.error = ""
        task.save(update_fields=["status", "attempts", "started_at", "error", "updated_at"])

    last = 0.0

    def report(percent: float, stage: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= min_interval_s or percent >= 100:
            last = now
            _report(task_id, percent, stage)

    try:
        result = work(report)
    except Exception as exc:
        fail_task(task_id, f"{type(exc).__name__}: {exc}")
        raise

    with transaction.atomic():
        task = TaskProgress.objects.select_for_update().get(pk=task_id)
        if task.status in FINISHED:
            return task
        if commit is not None:
            commit(result)
        task.status = TaskStatus.SUCCEEDED
        task.percent = 100.0
        task.stage = "done"
        task.result = result
        task.finished_at = timezone.now()
        task.save()
    return task


def fail_task(task_id: str, error: str) -> None:
    with transaction.atomic():
        TaskProgress.objects.filter(pk=task_id).exclude(status__in=FINISHED).update(
            status=TaskStatus.FAILED, error=error[:5000], finished_at=timezone.now()
        )
