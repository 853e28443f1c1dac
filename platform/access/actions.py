"""The application workflow: submit, approve, reject. Each step appends its event."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts import permissions
from catalog.models import DataClass, Dataset
from miliao.errors import Conflict, InvalidInput
from provenance.recorder import actor_of, record, subject_of

from .models import Application, ApplicationStatus

PURPOSE_MIN, PURPOSE_MAX = 10, 4000


@transaction.atomic(durable=True)
def submit_application(*, actor, dataset: Dataset, purpose: str) -> Application:
    permissions.check_submit_application(actor, dataset)
    purpose = (purpose or "").strip()
    if not PURPOSE_MIN <= len(purpose) <= PURPOSE_MAX:
        raise InvalidInput(
            "purpose", f"state the purpose in {PURPOSE_MIN} to {PURPOSE_MAX} characters"
        )
    if dataset.data_class == DataClass.OPEN:
        raise InvalidInput("dataset", f"{dataset.slug} is open: download it without applying")
    if Application.objects.filter(
        dataset=dataset, organisation=actor.organisation, status=ApplicationStatus.SUBMITTED
    ).exists():
        raise Conflict(
            f"{actor.organisation} already has an application for {dataset.slug} awaiting review"
        )
    application = Application.objects.create(
        dataset=dataset, organisation=actor.organisation, applicant=actor, purpose=purpose
    )
    record(
        "access.application_submitted",
        actor=actor_of(actor),
        subject=subject_of(application),
        payload={
            "dataset": dataset.slug,
            "organisation": actor.organisation.code,
            "purpose": purpose,
        },
        inputs=[subject_of(dataset)],
    )
    return application


def _decide(actor, application: Application, status: str, reason: str) -> Application:
    # Lock the row: two stewards deciding at once must not both win.
    application = Application.objects.select_for_update().select_related("dataset").get(
        pk=application.pk
    )
    permissions.check_decide_application(actor, application)
    reason = (reason or "").strip()
    if status == ApplicationStatus.REJECTED and not reason:
        raise InvalidInput("reason", "a rejection must say why")
    if application.status != ApplicationStatus.SUBMITTED:
        raise Conflict(f"application #{application.pk} is already {application.status}")
    application.status = status
    application.reviewer = actor
    application.decision_reason = reason
    application.decided_at = timezone.now()
    application.save(update_fields=["status", "reviewer", "decision_reason", "decided_at"])
    record(
        f"access.application_{status}",
        actor=actor_of(actor),
        subject=subject_of(application),
        payload={"dataset": application.dataset.slug, "reason": reason},
    )
    return application


@transaction.atomic(durable=True)
def approve_application(*, actor, application: Application, reason: str = "") -> Application:
    return _decide(actor, application, ApplicationStatus.APPROVED, reason)


@transaction.atomic(durable=True)
def reject_application(*, actor, application: Application, reason: str) -> Application:
    return _decide(actor, application, ApplicationStatus.REJECTED, reason)
