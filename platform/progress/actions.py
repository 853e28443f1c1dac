"""Queueing, running and finishing tracked tasks.

Progress rows are telemetry, so ticking the bar writes no lineage event; the
domain side effect a task exists for does, through its own action, in the same
transaction that marks the task finished. That is what makes tasks idempotent:
a retried task whose row is already finished returns without running, and a
task that died before finishing had produced no side effect yet.

A running task records its worker and beats while it works. A worker that dies
(SIGKILL, a lost machine) leaves its task `running`; `recover_lost_tasks` finds
it, at a worker's start (Celery's `worker_ready`: a task the restarted worker was
running is dead) and on the beat (a task whose heartbeat is older than
TASK_STALE_S), fails what it was building through that app's own action (a
release, a job, a submission's scoring, a challenge's close), then fails the task and
sends `task_lost`, which the event log records as a `tasks.worker_lost` event in the same
transaction (provenance.receivers): progress sits below the event log's own tracked tasks.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_noop

from .models import FINISHED, TaskProgress, TaskStatus
from .signals import task_lost

log = logging.getLogger(__name__)

# Work reports progress as (percent 0-100, stage, **values): the stage is a message id marked
# with gettext_noop, with named placeholders for the values; pages translate it when they show it.
Reporter = Callable[..., None]


def queue_task(kind: str, *, label: str, actor, dispatch: Callable[[str], Any],
               label_args: dict | None = None) -> TaskProgress:
    """Create the progress row and hand its id to Celery once the row is committed. `label` is a
    message id (gettext_noop) with named placeholders filled from `label_args`."""
    with transaction.atomic():
        task = TaskProgress.objects.create(
            kind=kind, label=label, label_args=label_args or {}, started_by=actor, organisation=actor.organisation
        )
        task_id = str(task.pk)
        transaction.on_commit(lambda: dispatch(task_id))
    return task


def by_name(task: str, *args) -> Callable[[str], Any]:
    """A `dispatch` for `queue_task`: send the Celery task named `task` (its queue comes from
    settings.CELERY_TASK_ROUTES, by name) with the progress row's id and `args`. Actions
    dispatch by name and never import their app's tasks module, which imports the worker code,
    which imports the actions."""
    def dispatch(task_id: str):
        from celery import current_app

        return current_app.send_task(task, args=(task_id, *args))

    return dispatch


def _report(task_id: str, percent: float, stage: str, args: dict) -> None:
    now = timezone.now()
    TaskProgress.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(
        percent=max(0.0, min(100.0, percent)), stage=stage[:200], stage_args=args, updated_at=now,
        heartbeat_at=now
    )


def worker_name() -> str:
    """The Celery worker's node name running the current task, or host:pid when inline."""
    from celery import current_task

    hostname = getattr(getattr(current_task, "request", None), "hostname", None) if current_task else None
    return hostname or f"inline@{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def _heartbeat(task_id: str):
    """Beat every TASK_HEARTBEAT_S while the work runs, from a thread of its own (so a long
    step without progress still shows the worker alive)."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.TASK_HEARTBEAT_S):
                try:
                    TaskProgress.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception:  # a busy or lost database: the next beat tries again
                    log.warning("task %s: a heartbeat failed", task_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{task_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_tracked(
    task_id: str,
    work: Callable[[Reporter], dict],
    *,
    commit: Callable[[dict], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    reason: Callable[[BaseException], str] | None = None,
    min_interval_s: float = 0.2,
) -> TaskProgress:
    """Run `work` for a queued task, then `commit(result)` and mark it done, atomically: the one
    crash path of every tracked task. Whatever fails (the work, the commit) fails the task with
    `reason(exc)` (by default "<class>: <message>"; an app whose messages may quote what a user
    wrote passes sandbox.failures.crashed), then `on_failure(reason)` settles the app's own
    side (a release or a submission failed), and the exception goes on to the caller."""
    try:
        return _run_tracked(task_id, work, commit, min_interval_s)
    except Exception as exc:
        why = reason(exc) if reason is not None else f"{type(exc).__name__}: {exc}"
        fail_task(task_id, why)
        if on_failure is not None:
            on_failure(why)
        raise


def _run_tracked(task_id: str, work: Callable[[Reporter], dict], commit: Callable[[dict], None] | None,
                 min_interval_s: float) -> TaskProgress:
    with transaction.atomic():
        task = TaskProgress.objects.select_for_update().get(pk=task_id)
        if task.status in FINISHED:
            log.info("task %s already %s; a retry changes nothing", task_id, task.status)
            return task
        task.status = TaskStatus.RUNNING
        task.attempts += 1
        task.started_at = task.started_at or timezone.now()
        task.error = ""
        task.worker, task.heartbeat_at = worker_name()[:200], timezone.now()
        task.save(update_fields=["status", "attempts", "started_at", "error", "worker", "heartbeat_at",
                                 "updated_at"])

    last = 0.0

    def report(percent: float, stage: str, **args) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= min_interval_s or percent >= 100:
            last = now
            _report(task_id, percent, stage, args)

    with _heartbeat(task_id):
        result = work(report)

    with transaction.atomic():
        task = TaskProgress.objects.select_for_update().get(pk=task_id)
        if task.status in FINISHED:
            return task
        if commit is not None:
            commit(result)
        task.status = TaskStatus.SUCCEEDED
        task.percent = 100.0
        task.stage, task.stage_args = gettext_noop("done"), {}
        task.result = result
        task.finished_at = timezone.now()
        task.save()
    return task


def fail_task(task_id: str, error: str) -> None:
    with transaction.atomic():
        TaskProgress.objects.filter(pk=task_id).exclude(status__in=FINISHED).update(
            status=TaskStatus.FAILED, error=error[:5000], finished_at=timezone.now()
        )


# --- recovery after a crash ----------------------------------------------------------------

# What a lost task of each kind was making, and the action of its app that fails it
# (called with the task and the reason; each is idempotent and records its own event).
# A kind not named here (the event-log verification) has nothing to undo.
ON_LOST = {
    "releases.build": "releases.actions.release_build_lost",
    "corpora.ingest": "corpora.actions.ingest_lost",
    "jobs.run": "jobs.actions.job_run_lost",
    "innovation.score": "innovation.actions.scoring_lost",
    "innovation.close": "innovation.actions.close_lost",
}
LOST_REASON = "the worker running it stopped ({worker}, last heartbeat {seen}); it did not finish"


def _lost(now: datetime.datetime, restarted: str | None) -> Q:
    stale = Q(heartbeat_at__lt=now - datetime.timedelta(seconds=settings.TASK_STALE_S)) | Q(
        heartbeat_at__isnull=True, updated_at__lt=now - datetime.timedelta(seconds=settings.TASK_STALE_S))
    return Q(status=TaskStatus.RUNNING) & (stale | Q(worker=restarted) if restarted else stale)


def recover_lost_tasks(*, restarted: str | None = None) -> list[str]:
    """Fail each running task whose worker died: its heartbeat is older than TASK_STALE_S,
    or it ran on `restarted`, a worker that has just started again (so it runs nothing yet).
    What the task was building fails first, through its app's action; then the task, with
    a `tasks.worker_lost` event. A second sweep finds nothing left to do. Returns the
    recovered task ids."""
    now = timezone.now()
    recovered = []
    for task in TaskProgress.objects.filter(_lost(now, restarted)).order_by("created_at"):
        seen = timezone.localtime(task.heartbeat_at or task.updated_at).isoformat(timespec="seconds")
        reason = LOST_REASON.format(worker=task.worker or "unknown", seen=seen)
        handler = ON_LOST.get(task.kind)
        if handler is not None:  # first, so that a sweep that dies here is simply repeated
            import_string(handler)(task, reason)
        if _fail_lost(task.pk, now, restarted, reason):
            recovered.append(str(task.pk))
            log.warning("task %s (%s) lost its worker %s; failed it", task.pk, task.kind, task.worker)
    return recovered


@transaction.atomic(durable=True)
def _fail_lost(task_id, now: datetime.datetime, restarted: str | None, reason: str) -> bool:
    task = TaskProgress.objects.select_for_update().filter(_lost(now, restarted), pk=task_id).first()
    if task is None:  # it finished, or another sweep got it
        return False
    task.status, task.error, task.finished_at = TaskStatus.FAILED, reason, timezone.now()
    task.save(update_fields=["status", "error", "finished_at", "updated_at"])
    task_lost.send(sender=TaskProgress, task=task)
    return True
