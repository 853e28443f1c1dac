"""Celery tasks of active defense."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="defense.check_expiring_licences", ignore_result=True)
def check_expiring_licences_task() -> int:
    """Run daily by Celery beat: an alert for each licence ending within its bureau's warning period."""
    from .checks import expiring_licences

    return expiring_licences()
