"""Celery task: run an approved job."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="jobs.run", acks_late=True)
def run_job_task(task_id: str, job_id: int) -> None:
    from .runner import run_job

    run_job(task_id, job_id)
