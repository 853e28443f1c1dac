"""Celery task: ingest a corpus version with visible progress (the work is corpora.worker)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="corpora.ingest")
def ingest_task(task_id: str, dataset_id: int, source: dict) -> None:
    from .worker import ingest

    ingest(task_id, dataset_id, source)
