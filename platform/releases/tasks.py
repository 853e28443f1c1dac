"""Celery task: build a release with visible progress (the work is releases.worker)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="releases.build")
def build_release_task(task_id: str, release_id: int) -> None:
    # Imported here, not at the top: a worker starts (and recovers after a crash) sooner.
    from .worker import build_release

    build_release(task_id, release_id)
