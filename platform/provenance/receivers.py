"""Events the log records for apps below it, which announce them by signal rather than import
the recorder (the event log's own background work is a tracked task of progress)."""
from __future__ import annotations

from django.dispatch import receiver

from kernel.events import EventType
from progress.signals import task_lost

from .recorder import record, subject_of


@receiver(task_lost, dispatch_uid="provenance-task-lost")
def record_lost_task(sender, task, **kwargs) -> None:
    record(EventType.TASKS_WORKER_LOST, actor="system", subject=subject_of(task),
           payload={"kind": task.kind, "worker": task.worker, "percent": round(task.percent, 1),
                    "heartbeat_at": task.heartbeat_at.isoformat() if task.heartbeat_at else None})
