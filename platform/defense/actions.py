"""Raising and handling alerts. A critical alert about a licence suspends it at once; a
steward of the owning bureau acknowledges alerts and reinstates licences (access.actions)."""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import Organisation, Role, User
from kernel.errors import Conflict, InvalidInput
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of

from . import rules
from .models import Alert, AlertStatus, Severity

log = logging.getLogger(__name__)


def raise_alert(
    *, kind: str, severity: str, bureau, subject: str, message: str, message_args: dict | None = None,
    detail: dict | None = None, dataset=None, organisation=None, licence=None,
) -> Alert | None:
    """Record an alert, suspend the licence if it is critical, and email the bureau's stewards.

    `message` is a message id marked with gettext_noop, with named placeholders filled from
    `message_args`: the alert is stored untranslated and each reader sees it in their language.

    An open alert of the same kind about the same subject at the same or a higher severity
    is not raised again (a burst of downloads is one alert, not one per download). The
    suspension and the email follow the alert's commit: suspending is an action of its own.
    """
    with transaction.atomic():
        # Alerts of one bureau are raised one at a time (its row is the lock), so two
        # concurrent checks cannot both find no open alert and raise the same one twice.
        Organisation.objects.select_for_update().filter(pk=bureau.pk).first()
        open_same = Alert.objects.filter(kind=kind, subject=subject, status=AlertStatus.OPEN)
        ranks = [Severity.INFO, Severity.WARNING, Severity.CRITICAL]
        if any(ranks.index(a.severity) >= ranks.index(severity) for a in open_same):
            return None
        recipients = sorted(
            User.objects.filter(organisation=bureau, role=Role.STEWARD, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
        alert = Alert.objects.create(
            kind=kind, severity=severity, bureau=bureau, subject=subject, message=message,
            message_args=message_args or {}, detail=detail or {}, dataset=dataset, organisation=organisation,
            licence=licence, emailed_to=recipients,
        )
        record(
            EventType.DEFENSE_ALERT_RAISED,
            actor="system",
            subject=subject_of(alert),
            payload={"kind": kind, "severity": severity, "bureau": bureau.code, "message": _english(alert)},
            inputs=[subject],
        )
        transaction.on_commit(lambda: _follow_up(alert))
    return alert


def _follow_up(alert: Alert) -> None:
    """After the alert commits: suspend the licence of a critical alert, then tell the stewards."""
    if alert.severity == Severity.CRITICAL and alert.licence_id is not None:
        from access.actions import suspend_licence
        from access.models import LicenceStatus

        licence = alert.licence
        licence.refresh_from_db()
        if licence.status == LicenceStatus.ACTIVE:
            suspend_licence(actor=None, licence=licence, reason=f"alert #{alert.pk}: {_english(alert)}",
                            automatic=True)
            Alert.objects.filter(pk=alert.pk).update(licence_suspended=True)
            alert.licence_suspended = True
    if alert.emailed_to:
        _email(alert, alert.emailed_to)


def _english(alert: Alert) -> str:
    """The alert's message in English, as events and the licence's status note record it."""
    with translation.override("en"):
        return alert.message_text()


def _email(alert: Alert, recipients: list[str]) -> None:
    # Stewards read mail in the portal's language (settings.LANGUAGE_CODE).
    with translation.override(settings.LANGUAGE_CODE):
        subject = f"[Miliao] {alert.get_severity_display()} · {alert.get_kind_display()}"
        body = (
            f"{alert.message_text()}\n\n"
            f"{alert.subject}\n"
            + (_("The licence was suspended automatically; reinstate it from the portal once resolved.") + "\n"
               if alert.licence_suspended else "")
            + "\n" + _("Alert #%(alert)s, %(time)s UTC") % {"alert": alert.pk,
                                                             "time": f"{alert.created_at:%Y-%m-%d %H:%M}"}
        )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except OSError as exc:  # the alert stands in the portal even when mail is down
        log.warning("could not email alert #%s: %s", alert.pk, exc)


@transaction.atomic(durable=True)
def acknowledge_alert(*, actor, alert: Alert, note: str) -> Alert:
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    rules.check_handle_alert(actor, alert)
    note = (note or "").strip()
    if not note:
        raise InvalidInput("note", _("say what was done about the alert"))
    if alert.status != AlertStatus.OPEN:
        raise Conflict(_("alert #%(alert)s is already %(alert_status)s")
                       % {"alert": alert.pk, "alert_status": alert.get_status_display()})
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_by = actor
    alert.acknowledged_at = timezone.now()
    alert.note = note[:2000]
    alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at", "note"])
    record(EventType.DEFENSE_ALERT_ACKNOWLEDGED, actor=actor_of(actor), subject=subject_of(alert), payload={"note": alert.note})
    return alert
