"""The dashboards' access cards: licences, open downloads, applications sent back for
changes, and leak tracing. Each reads what the user may see; buttons show only where the
rule in access.rules would allow the action."""

from __future__ import annotations

from django import template

from access import rules
from access.models import Application, ApplicationStatus, LeakFinding, Licence, PurposeCategory
from access.packages import FORMATS
from catalog.models import DataClass
from kernel import roles
from releases.models import Release, ReleaseStatus

register = template.Library()


def _card(context, **values) -> dict:
    """An inclusion tag's context: its values, plus what its forms need from the page."""
    return {**values, "request": context["request"], "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("portal/_licences.html", takes_context=True)
def licences_card(context):
    user = context["request"].user
    licences = rules.visible_licences(
        user,
        Licence.objects.select_related("release__corpus__dataset__owner", "organisation").prefetch_related(
            "users"
        ),
    )
    if roles.has_role(user, "steward"):
        licences = licences.filter(release__corpus__dataset__owner_id=user.organisation_id)
    rows = [
        {
            "licence": licence,
            "may_download": roles.allowed(rules.check_download_licence, user, licence)
            and user in licence.users.all(),
            "may_manage": roles.allowed(rules.check_manage_licence, user, licence),
        }
        for licence in licences[:50]
    ]
    return _card(context, rows=rows, formats=FORMATS)


@register.inclusion_tag("portal/_open_releases.html", takes_context=True)
def open_releases_card(context):
    releases = (
        Release.objects.filter(status=ReleaseStatus.PUBLISHED, corpus__dataset__data_class=DataClass.OPEN)
        .select_related("corpus__dataset")
        .order_by("-published_at")[:20]
    )
    return _card(context, releases=releases, formats=FORMATS)


@register.inclusion_tag("portal/_changes_requested.html", takes_context=True)
def changes_requested_card(context):
    user = context["request"].user
    sent_back = rules.visible_applications(
        user, Application.objects.filter(status=ApplicationStatus.CHANGES_REQUESTED).select_related("dataset")
    ).filter(organisation_id=user.organisation_id)
    return _card(context, applications=sent_back, categories=PurposeCategory.choices)


@register.inclusion_tag("portal/_leaks.html", takes_context=True)
def leaks_card(context):
    user = context["request"].user
    findings = rules.visible_leak_findings(
        user, LeakFinding.objects.select_related("recipient", "licence", "release")
    )[:20]
    return _card(
        context, findings=findings, may_trace=roles.allowed(rules.check_trace_leak, user)
    )
