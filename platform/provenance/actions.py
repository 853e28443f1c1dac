"""Actions of the provenance app: verifying the chain, and recording admin edits."""
from __future__ import annotations

from django.db import models, transaction
from django.utils.translation import gettext_noop

from kernel.events import EventType
from progress.actions import by_name, queue_task
from progress.models import TaskProgress

from . import rules
from .recorder import actor_of, record, subject_of

VERIFY_TASK_KIND = "ledger.verify_events"


def start_event_log_verification(*, actor) -> TaskProgress:
    """Queue a background walk of the whole chain; its progress row is returned."""
    rules.check_verify_events(actor)
    return queue_task(
        VERIFY_TASK_KIND,
        label=gettext_noop("核验溯源事件链"),  # stored untranslated; pages translate it
        actor=actor,
        dispatch=by_name("provenance.verify_event_log"),
    )


def record_verification(*, actor, report: dict) -> None:
    """Called inside the transaction that finishes the verification task.

    The event is a checkpoint: it attests the head the auditor saw, so a later
    truncation of the log below that head is visible.
    """
    record(
        EventType.LEDGER_EVENTS_VERIFIED,
        actor=actor_of(actor),
        subject="ledger.chain:head",
        payload={
            "ok": report["ok"],
            "checked": report["checked"],
            "head_seq": report["head_seq"],
            "head_hash": report["head_hash"],
            "tamper": report["tamper"],
        },
    )


@transaction.atomic  # not durable: the admin's change view already holds a transaction
def save_from_admin(*, actor, obj: models.Model, changed: list[str], adding: bool) -> None:
    """Django admin saves go through here, so an admin edit is an event like any other."""
    obj.save()
    record(
        EventType.ADMIN_OBJECT_ADDED if adding else EventType.ADMIN_OBJECT_CHANGED,
        actor=actor_of(actor),
        subject=subject_of(obj),
        payload={"fields": sorted(changed)},
    )
