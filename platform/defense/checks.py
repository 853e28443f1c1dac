"""The risk checks, fed from the models: each looks at one thing that just happened."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_noop

from provenance.recorder import subject_of

from . import risk
from .actions import raise_alert
from .models import AlertKind, DefensePolicy, Severity


def after_download(download) -> None:
    """A burst of downloads of one licence (or by one user of an open release)."""
    from access.models import Download

    dataset = download.release.corpus.dataset
    policy = DefensePolicy.for_bureau(dataset.owner)
    since = timezone.now() - timedelta(minutes=policy.burst_window_minutes)
    if download.licence_id:
        same = Download.objects.filter(licence_id=download.licence_id, created_at__gte=since)
        subject, licence = subject_of(download.licence), download.licence
    else:
        same = Download.objects.filter(release=download.release, user=download.user, created_at__gte=since)
        subject, licence = f"{subject_of(download.release)}/{download.user.actor_label}", None
    times = list(same.values_list("created_at", flat=True))
    level = risk.download_burst(
        times, timezone.now(), window_minutes=policy.burst_window_minutes, threshold=policy.burst_downloads
    )
    if level:
        raise_alert(
            kind=AlertKind.DOWNLOAD_BURST, severity=level, bureau=dataset.owner, subject=subject, dataset=dataset,
            organisation=download.organisation, licence=licence,
            message=gettext_noop("%(downloads)s downloads in %(minutes)s minutes (threshold %(threshold)s) by "
                                 "%(user)s"),
            message_args={"downloads": len(times), "minutes": policy.burst_window_minutes,
                          "threshold": policy.burst_downloads, "user": download.user.actor_label},
            detail={"downloads": len(times), "window_minutes": policy.burst_window_minutes},
        )


def after_refused_use(licence, user, reason: str) -> None:
    """Someone outside the licensed organisation tried to use it: the link was passed on."""
    if user is None or user.organisation_id == licence.organisation_id:
        return
    dataset = licence.release.corpus.dataset
    raise_alert(
        kind=AlertKind.FOREIGN_ACCESS, severity=Severity.CRITICAL, bureau=dataset.owner, subject=subject_of(licence),
        dataset=dataset, organisation=user.organisation, licence=licence,
        message=gettext_noop("%(user)s of %(organisation)s tried to use licence #%(licence)s of %(holder)s: "
                             "%(reason)s"),
        message_args={"user": user.actor_label, "organisation": user.organisation.code, "licence": licence.pk,
                      "holder": licence.organisation.code, "reason": str(reason)},
        detail={"user": user.actor_label, "organisation": user.organisation.code},
    )


def after_application(application) -> None:
    """Near-identical requests for the same dataset from several organisations."""
    from access.models import Application

    dataset = application.dataset
    policy = DefensePolicy.for_bureau(dataset.owner)
    since = timezone.now() - timedelta(days=policy.similar_window_days)
    others = (
        Application.objects.filter(dataset=dataset, submitted_at__gte=since)
        .exclude(organisation=application.organisation)
        .values_list("organisation__code", "purpose")
    )
    alike = risk.similar_requests(
        application.purpose, list(others), ratio=policy.similar_ratio, organisations=policy.similar_organisations
    )
    if alike:
        raise_alert(
            kind=AlertKind.SIMILAR_REQUESTS, severity=Severity.WARNING, bureau=dataset.owner,
            subject=subject_of(dataset), dataset=dataset, organisation=application.organisation,
            message=gettext_noop("%(organisation)s asks for %(dataset)s in almost the same words as %(others)s"),
            message_args={"organisation": application.organisation.code, "dataset": dataset.slug,
                          "others": ", ".join(alike)},
            detail={"organisations": [application.organisation.code, *alike], "application": application.pk},
        )


def after_budget_change(budget) -> None:
    policy = DefensePolicy.for_bureau(budget.dataset.owner)
    spent, total = float(budget.epsilon_spent), float(budget.epsilon_total)
    level = risk.budget_level(spent, total, warning=policy.budget_warning, critical=policy.budget_critical)
    if level:
        raise_alert(
            kind=AlertKind.BUDGET_HIGH, severity=level, bureau=budget.dataset.owner, subject=subject_of(budget),
            dataset=budget.dataset, organisation=budget.organisation,
            message=gettext_noop("%(organisation)s has spent ε %(spent)s of %(total)s on %(dataset)s"),
            message_args={"organisation": budget.organisation.code, "spent": f"{spent:g}", "total": f"{total:g}",
                          "dataset": budget.dataset.slug},
            detail={"spent": str(budget.epsilon_spent), "total": str(budget.epsilon_total)},
        )


def expiring_licences() -> int:
    """Active licences that end within the bureau's warning period (the beat runs this daily)."""
    from access.models import Licence

    now = timezone.now()
    raised = 0
    for licence in Licence.objects.filter(status="active", valid_until__gte=now).select_related(
        "release__corpus__dataset__owner", "organisation"
    ):
        dataset = licence.release.corpus.dataset
        policy = DefensePolicy.for_bureau(dataset.owner)
        if risk.expiring(licence.valid_until, now, days=policy.expiry_warning_days):
            alert = raise_alert(
                kind=AlertKind.LICENCE_EXPIRING, severity=Severity.INFO, bureau=dataset.owner,
                subject=subject_of(licence), dataset=dataset, organisation=licence.organisation, licence=licence,
                message=gettext_noop("licence #%(licence)s of %(organisation)s ends %(date)s"),
                message_args={"licence": licence.pk, "organisation": licence.organisation.code,
                              "date": f"{licence.valid_until:%Y-%m-%d}"},
            )
            raised += alert is not None
    return raised


def after_leak(finding) -> None:
    """A traced leak: naming a licence is critical (it is suspended); naming nobody is a warning."""
    release = finding.release
    if release is None:
        return
    dataset = release.corpus.dataset
    if finding.licence_id:
        raise_alert(
            kind=AlertKind.LEAK_TRACED, severity=Severity.CRITICAL, bureau=dataset.owner,
            subject=subject_of(finding.licence), dataset=dataset, organisation=finding.recipient,
            licence=finding.licence,
            message=gettext_noop("a leaked file (%(file)s) was traced to licence #%(licence)s of %(recipient)s "
                                 "(p = %(p)s)"),
            message_args={"file": finding.file_name, "licence": finding.licence_id,
                          "recipient": finding.recipient.code if finding.recipient else "?",
                          "p": f"{finding.p_value:.2e}"},
            detail={"finding": finding.pk},
        )
    else:
        raise_alert(
            kind=AlertKind.LEAK_TRACED, severity=Severity.WARNING, bureau=dataset.owner, subject=subject_of(finding),
            dataset=dataset,
            message=gettext_noop("a leaked file (%(file)s) matches release #%(release)s but names no licence"),
            message_args={"file": finding.file_name, "release": release.pk},
            detail={"finding": finding.pk},
        )
