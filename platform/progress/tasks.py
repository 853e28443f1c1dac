"""Celery task of the progress app: the beat's sweep for tasks whose worker died."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="progress.recover_lost_tasks", ignore_result=True, acks_late=False)
def recover_lost_tasks_task() -> list[str]:
    """Run by Celery beat every TASK_RECOVERY_S (and by each worker as it starts)."""
    from .actions import recover_lost_tasks

    return recover_lost_tasks()
