"""Who applies for data, decides applications, holds and manages licences, downloads and
traces leaks; and what a licence's own policy allows right now (check_licence)."""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import DataClass
from kernel.errors import Refused
from kernel.roles import Role, has_role, held_or_owned, reads_everything, require_login, require_role
from releases.models import ReleaseStatus

from . import odrl
from .models import ApplicationStatus, LicenceStatus

# --- applications ----------------------------------------------------------------


def check_submit_application(user, dataset) -> None:
    require_role(user, Role.APPLICANT, doing=_("applying for data"))
    if user.organisation_id is None:
        raise Refused(_("you belong to no organisation, so you cannot apply"))


def check_decide_application(user, application) -> None:
    require_role(user, Role.STEWARD, doing=_("deciding an application"))
    if application.dataset.owner_id != user.organisation_id:
        raise Refused(
            _("only stewards of %(application_dataset_owner)s decide applications for "
              "%(application_dataset_slug)s")
            % {"application_dataset_owner": application.dataset.owner,
               "application_dataset_slug": application.dataset.slug}
        )
    # Separation of duties: a bureau never approves its own request.
    if application.organisation_id == user.organisation_id:
        raise Refused(
            _("separation of duties: a steward cannot decide an application from their own organisation")
        )


def check_resubmit_application(user, application) -> None:
    """The applicant's organisation answers a steward's request for changes."""
    require_role(user, Role.APPLICANT, doing=_("changing an application"))
    if application.organisation_id != user.organisation_id:
        raise Refused(_("application #%(application)s belongs to %(application_organisation)s, not to you")
                      % {"application": application.pk, "application_organisation": application.organisation})


def visible_applications(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    own = Q(organisation_id=user.organisation_id)
    if has_role(user, Role.STEWARD):
        return qs.filter(own | Q(dataset__owner_id=user.organisation_id))
    return qs.filter(own)


def check_run_job(user, dataset, application) -> None:
    """Jobs on compute-only data: a named person of an organisation whose application for
    the dataset was approved and has not run out (``application`` is that approval, or None)."""
    require_role(user, Role.APPLICANT, doing=_("running a job"))
    if application is None or application.status != ApplicationStatus.APPROVED:
        raise Refused(_("%(user_organisation)s has no approved application for %(dataset)s")
                      % {"user_organisation": user.organisation, "dataset": dataset.slug})
    if application.organisation_id != user.organisation_id or application.dataset_id != dataset.pk:
        raise Refused(_("application #%(application)s is not %(user_organisation)s's approval for "
                        "%(dataset)s")
                      % {"application": application.pk,
                         "user_organisation": user.organisation,
                         "dataset": dataset.slug})
    if not application.people.filter(pk=user.pk).exists():
        raise Refused(_("%(user_username)s is not named on application #%(application)s")
                      % {"user_username": user.username, "application": application.pk})


# --- licences and downloads ---------------------------------------------------------


def visible_licences(user, qs: QuerySet) -> QuerySet:
    """The licensed organisation, stewards of the dataset's bureau, auditors and admins."""
    return held_or_owned(user, qs, "release__corpus__dataset__owner_id")


def check_manage_licence(user, licence) -> None:
    """Suspend, revoke, reinstate: stewards of the owning bureau, never on their own
    organisation's licence."""
    require_role(user, Role.STEWARD, doing=_("changing a licence"))
    dataset = licence.release.corpus.dataset
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(dataset_owner)s change licences on %(dataset)s")
                      % {"dataset_owner": dataset.owner, "dataset": dataset.slug})
    if licence.organisation_id == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot change their own organisation's licence"))


def check_download_licence(user, licence) -> None:
    """Who may ask for a link under a licence; the licence's policy then decides whether
    this person, now, for this purpose (check_licence)."""
    require_role(user, Role.APPLICANT, doing=_("downloading under a licence"))
    if licence.organisation_id != user.organisation_id:
        raise Refused(_("licence #%(licence)s was granted to %(licence_organisation)s, not to your "
                        "organisation")
                      % {"licence": licence.pk, "licence_organisation": licence.organisation})


def check_licence(licence, *, user, purpose: str = "", count: int | None = None, at=None) -> None:
    """Refused, with the reason, unless ``user`` may download under ``licence`` now: the licence
    is active, and its policy permits this reproduction."""
    if licence.status != LicenceStatus.ACTIVE:
        message = (_("licence #%(licence)s is %(status)s: %(reason)s") if licence.status_reason
                   else _("licence #%(licence)s is %(status)s"))
        raise Refused(message % {"licence": licence.pk, "status": licence.get_status_display(),
                                 "reason": licence.status_reason_text()})
    decision = odrl.evaluate(
        licence.policy,
        odrl.Request(
            action="reproduce",
            target=odrl.uri("release", licence.release_id),
            assignee=odrl.uri("org", user.organisation.code if user.organisation_id else ""),
            recipient=odrl.uri("user", user.username),
            purpose=purpose or licence.application.purpose_category,
            at=at or timezone.now(),
            count=(licence.downloads_used + 1) if count is None else count,
        ),
    )
    if not decision.permitted:
        raise Refused(_("licence #%(licence)s: %(decision_reason)s")
                      % {"licence": licence.pk, "decision_reason": decision.reason})


def check_download_release(user, release) -> None:
    """Without a licence: any logged-in user, published releases of open datasets only."""
    require_login(user)
    dataset = release.corpus.dataset
    if dataset.data_class == DataClass.COMPUTE_ONLY:
        raise Refused(
            f"{dataset.slug} is compute-only (可用不可见): its data never leaves the platform; run jobs on it instead"
        )
    if dataset.data_class != DataClass.OPEN:
        raise Refused(_("%(dataset)s is conditional: apply for it and download through your licence")
                      % {"dataset": dataset.slug})
    if release.status != ReleaseStatus.PUBLISHED:
        raise Refused(_("release #%(release)s is not published") % {"release": release.pk})


def check_use_download_link(user, link_user_id: int) -> None:
    require_login(user)
    if user.pk != link_user_id:
        raise Refused(_("this download link was issued to another user; ask for your own"))


# --- leak tracing -------------------------------------------------------------------


def check_trace_leak(user) -> None:
    require_role(user, Role.AUDITOR, doing=_("tracing a leaked file"))


def check_view_leak_findings(user) -> None:
    require_role(user, Role.AUDITOR, Role.ADMIN, Role.STEWARD, doing=_("reading leak findings"))


def visible_leak_findings(user, qs: QuerySet) -> QuerySet:
    """Auditors and admins: all; stewards: findings on their bureau's releases."""
    if reads_everything(user):
        return qs
    if has_role(user, Role.STEWARD):
        return qs.filter(release__corpus__dataset__owner_id=user.organisation_id)
    return qs.none()
