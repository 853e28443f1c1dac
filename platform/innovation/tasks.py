"""Celery tasks: score a submission; score the finals at a challenge's close."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="innovation.score", acks_late=True)
def score_submission_task(task_id: str, submission_id: int) -> None:
    from .scoring import score_submission

    score_submission(task_id, submission_id)


@shared_task(name="innovation.close", acks_late=True)
def close_challenge_task(task_id: str, challenge_id: int) -> None:
    from .scoring import score_finals

    score_finals(task_id, challenge_id)
