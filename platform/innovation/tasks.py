"""Celery tasks: score a submission; score the finals at a challenge's close; close the
challenges whose end has passed (beat)."""
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


@shared_task(name="innovation.close_due_challenges", ignore_result=True)
def close_due_challenges_task() -> list[str]:
    """Run by Celery beat every CHALLENGE_CLOSE_CHECK_S: challenges past `closes_at` close."""
    from .actions import close_due_challenges

    return close_due_challenges()
