"""Every permission rule of the platform, in one place.

`check_*` functions raise Refused with the reason a user would need to read;
actions call them before they write, so a rule holds whatever calls the action.
`visible_*` functions scope querysets for reads. Views use both and decide
nothing themselves.
"""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from rest_framework import permissions as drf_permissions

from kernel.errors import Refused

from .models import OrganisationKind, Role


def role_of(user) -> str | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return user.role


def has_role(user, *roles: str) -> bool:
    return role_of(user) in roles


def reads_everything(user) -> bool:
    """Auditors and admins see every organisation's records."""
    return has_role(user, Role.AUDITOR, Role.ADMIN)


def allowed(check, *args) -> bool:
    """Whether a check_* rule passes, for templates that show or hide a button."""
    try:
        check(*args)
    except Refused:
        return False
    return True


def _require_role(user, *roles: str, doing: str) -> None:
    role = role_of(user)
    if role is None:
        raise Refused(_("log in first"))
    if role not in roles:
        names = ", ".join(str(Role(r).label) for r in roles)
        raise Refused(_("%(doing)s needs the role %(names)s; you are %(role_label)s")
                      % {"doing": doing, "names": names, "role_label": Role(role).label})


# --- organisations and users ---------------------------------------------------


def check_manage_accounts(user) -> None:
    _require_role(user, Role.ADMIN, doing=_("managing organisations and users"))


def check_unlock_login(user) -> None:
    _require_role(user, Role.STEWARD, Role.ADMIN, doing=_("unlocking a locked-out login"))


def visible_users(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)


# --- datasets ------------------------------------------------------------------


def check_register_dataset(user, owner) -> None:
    _require_role(user, Role.STEWARD, doing=_("registering a dataset"))
    if owner.kind != OrganisationKind.BUREAU:
        raise Refused(_("datasets are owned by a bureau; %(owner)s is not one") % {"owner": owner})
    if owner.pk != user.organisation_id:
        raise Refused(_("stewards register datasets for their own bureau only, not for %(owner)s")
                      % {"owner": owner})


def check_manage_dataset(user, dataset) -> None:
    _require_role(user, Role.STEWARD, doing=_("changing a dataset"))
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("dataset %(dataset)s belongs to %(dataset_owner)s, not to your bureau")
                      % {"dataset": dataset.slug, "dataset_owner": dataset.owner})


# --- applications ----------------------------------------------------------------


def check_submit_application(user, dataset) -> None:
    _require_role(user, Role.APPLICANT, doing=_("applying for data"))
    if user.organisation_id is None:
        raise Refused(_("you belong to no organisation, so you cannot apply"))


def check_decide_application(user, application) -> None:
    _require_role(user, Role.STEWARD, doing=_("deciding an application"))
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


def visible_applications(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    own = Q(organisation_id=user.organisation_id)
    if has_role(user, Role.STEWARD):
        return qs.filter(own | Q(dataset__owner_id=user.organisation_id))
    return qs.filter(own)


# --- releases ----------------------------------------------------------------------


def visible_releases(user, qs: QuerySet) -> QuerySet:
    """Published releases are for everyone; unpublished ones for their bureau and auditors."""
    if reads_everything(user):
        return qs
    published = Q(status="published")
    if has_role(user, Role.STEWARD):
        return qs.filter(published | Q(corpus__dataset__owner_id=user.organisation_id))
    return qs.filter(published)


def sees_release_geometry(user, release) -> bool:
    """Whether a page may draw a release's own geometry for ``user``: only what they could
    download. Anyone logged in downloads a published open release; the owning bureau's
    stewards have the release's files. A licence holder sees their own fingerprinted package
    instead (access.licensing.licence_to_view); everyone else, where the release lies, to
    the grid cell."""
    if role_of(user) is None:
        return False
    dataset = release.corpus.dataset
    if dataset.data_class == "open" and release.status == "published":
        return True
    return allowed(check_manage_dataset, user, dataset)


# --- provenance events and tasks -------------------------------------------------


def check_view_events(user) -> None:
    _require_role(
        user, Role.AUDITOR, Role.ADMIN, Role.STEWARD, doing=_("reading the provenance event log")
    )


def check_verify_events(user) -> None:
    _require_role(user, Role.AUDITOR, Role.ADMIN, doing=_("verifying the provenance event log"))


def visible_tasks(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)


# --- Django admin ------------------------------------------------------------------


def can_use_admin(user) -> bool:
    return has_role(user, Role.STEWARD, Role.ADMIN)


# --- DRF --------------------------------------------------------------------------


def catalog_audience(user) -> str:
    """Which catalogue a reader sees: "members" (anyone logged in: every dataset) or "public"
    (anonymous readers: the open-data catalogue that harvesters fetch). The catalogue's kept
    answers (catalog.answers) are shared within an audience, so nothing else about the reader
    may change what catalog_datasets returns."""
    return "members" if role_of(user) is not None else "public"


def catalog_datasets(user, qs: QuerySet) -> QuerySet:
    """The catalogue's entries a reader's audience sees (catalog_audience)."""
    return qs if catalog_audience(user) == "members" else qs.filter(data_class="open")


class OpenCatalogReadable(drf_permissions.BasePermission):
    """Anyone may read (anonymous readers see open datasets only: catalog_datasets)."""

    def has_permission(self, request, view) -> bool:
        return request.method in drf_permissions.SAFE_METHODS


class AuditorsReadOnly(drf_permissions.BasePermission):
    """Logged-in users only; auditors may not use unsafe methods unless a view allows it."""

    message = "auditors read everything and change nothing"

    def has_permission(self, request, view) -> bool:
        if role_of(request.user) is None:
            return False
        if request.method in drf_permissions.SAFE_METHODS:
            return True
        if getattr(view, "auditors_may_post", False):
            return True
        return not has_role(request.user, Role.AUDITOR)


# --- privacy budgets (platform/budgets) --------------------------------------------
# `None` as the user is the platform itself, spending or refunding for a job from code
# that no request reaches; views pass request.user, which is never None.


def check_grant_budget(user, organisation, dataset) -> None:
    if user is None:
        return
    _require_role(user, Role.STEWARD, doing=_("granting a privacy budget"))
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(dataset_owner)s grant budgets on %(dataset)s")
                      % {"dataset_owner": dataset.owner, "dataset": dataset.slug})
    if organisation.pk == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot grant a budget to their own organisation"))


def check_spend_budget(user, organisation, dataset) -> None:
    if user is None:
        return
    _require_role(user, Role.APPLICANT, doing=_("spending a privacy budget"))
    if organisation.pk != user.organisation_id:
        raise Refused(_("a job spends its own organisation's budget, not the one of %(organisation)s")
                      % {"organisation": organisation})


def check_adjust_budget(user, budget) -> None:
    """Refunds: stewards of the dataset's bureau, never on their own organisation's budget."""
    if user is None:
        return
    _require_role(user, Role.STEWARD, doing=_("refunding a privacy budget"))
    if budget.dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(budget_dataset_owner)s adjust budgets on "
                        "%(budget_dataset_slug)s")
                      % {"budget_dataset_owner": budget.dataset.owner,
                         "budget_dataset_slug": budget.dataset.slug})
    if budget.organisation_id == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot refund their own organisation's budget"))


def _held_or_owned(user, qs: QuerySet, owner_path: str) -> QuerySet:
    """Rows held by the user's organisation; for stewards also those on their bureau's data
    (``owner_path`` leads to the owning bureau); everything for auditors and admins."""
    if role_of(user) is None:
        return qs.none()
    if reads_everything(user):
        return qs
    own = Q(organisation_id=user.organisation_id)
    if has_role(user, Role.STEWARD):
        return qs.filter(own | Q(**{owner_path: user.organisation_id}))
    return qs.filter(own)


def visible_budgets(user, qs: QuerySet) -> QuerySet:
    """The budget's organisation, stewards of the dataset's bureau, auditors and admins."""
    return _held_or_owned(user, qs, "dataset__owner_id")


# --- licences, downloads and leak tracing (platform/access) ---------------------------


def check_resubmit_application(user, application) -> None:
    """The applicant's organisation answers a steward's request for changes."""
    _require_role(user, Role.APPLICANT, doing=_("changing an application"))
    if application.organisation_id != user.organisation_id:
        raise Refused(_("application #%(application)s belongs to %(application_organisation)s, not to you")
                      % {"application": application.pk, "application_organisation": application.organisation})


def check_run_job(user, dataset, application) -> None:
    """Jobs on compute-only data: a named person of an organisation whose application for
    the dataset was approved and has not run out (``application`` is that approval, or None)."""
    _require_role(user, Role.APPLICANT, doing=_("running a job"))
    if application is None or application.status != "approved":
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


def visible_licences(user, qs: QuerySet) -> QuerySet:
    """The licensed organisation, stewards of the dataset's bureau, auditors and admins."""
    return _held_or_owned(user, qs, "release__corpus__dataset__owner_id")


def check_manage_licence(user, licence) -> None:
    """Suspend, revoke, reinstate: stewards of the owning bureau, never on their own
    organisation's licence."""
    _require_role(user, Role.STEWARD, doing=_("changing a licence"))
    dataset = licence.release.corpus.dataset
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(dataset_owner)s change licences on %(dataset)s")
                      % {"dataset_owner": dataset.owner, "dataset": dataset.slug})
    if licence.organisation_id == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot change their own organisation's licence"))


def check_download_licence(user, licence) -> None:
    """Who may ask for a link under a licence; the licence's policy then decides whether
    this person, now, for this purpose (access.licensing.check_licence)."""
    _require_role(user, Role.APPLICANT, doing=_("downloading under a licence"))
    if licence.organisation_id != user.organisation_id:
        raise Refused(_("licence #%(licence)s was granted to %(licence_organisation)s, not to your "
                        "organisation")
                      % {"licence": licence.pk, "licence_organisation": licence.organisation})


def check_download_release(user, release) -> None:
    """Without a licence: any logged-in user, published releases of open datasets only."""
    if role_of(user) is None:
        raise Refused(_("log in first"))
    dataset = release.corpus.dataset
    if dataset.data_class == "compute_only":
        raise Refused(
            f"{dataset.slug} is compute-only (可用不可见): its data never leaves the platform; run jobs on it instead"
        )
    if dataset.data_class != "open":
        raise Refused(_("%(dataset)s is conditional: apply for it and download through your licence")
                      % {"dataset": dataset.slug})
    if release.status != "published":
        raise Refused(_("release #%(release)s is not published") % {"release": release.pk})


def check_use_download_link(user, link_user_id: int) -> None:
    if role_of(user) is None:
        raise Refused(_("log in first"))
    if user.pk != link_user_id:
        raise Refused(_("this download link was issued to another user; ask for your own"))


def check_trace_leak(user) -> None:
    _require_role(user, Role.AUDITOR, doing=_("tracing a leaked file"))


def check_view_leak_findings(user) -> None:
    _require_role(user, Role.AUDITOR, Role.ADMIN, Role.STEWARD, doing=_("reading leak findings"))


def visible_leak_findings(user, qs: QuerySet) -> QuerySet:
    """Auditors and admins: all; stewards: findings on their bureau's releases."""
    if reads_everything(user):
        return qs
    if has_role(user, Role.STEWARD):
        return qs.filter(release__corpus__dataset__owner_id=user.organisation_id)
    return qs.none()


# --- active defense --------------------------------------------------------------------


def visible_alerts(user, qs: QuerySet) -> QuerySet:
    """Auditors and admins: every alert; stewards: their bureau's; nobody else."""
    if reads_everything(user):
        return qs
    if has_role(user, Role.STEWARD):
        return qs.filter(bureau_id=user.organisation_id)
    return qs.none()


def check_handle_alert(user, alert) -> None:
    _require_role(user, Role.STEWARD, doing=_("handling a risk alert"))
    if alert.bureau_id != user.organisation_id:
        raise Refused(_("alert #%(alert)s is for %(alert_bureau)s, not your bureau")
                      % {"alert": alert.pk, "alert_bureau": alert.bureau})


# --- the catalogue (platform/catalog) ------------------------------------------------


def check_read_catalog(user) -> None:
    """Every logged-in role reads the catalogue: metadata, schema, DCAT and dataset pages."""
    _require_role(user, *Role.values, doing=_("reading the catalogue"))


def shows_real_rows(user, dataset) -> bool:
    """Whether a dataset page may show `user` real rows: only open data, and then only rows of
    a published release, which anyone logged in may download anyway. Anonymous visitors (the
    public catalogue) download nothing, conditional rows need a licence and compute-only rows
    never leave, so those pages show the schema and synthetic mock rows instead."""
    return role_of(user) is not None and dataset.data_class == "open"


# --- privacy sandbox: jobs and the model registry (platform/jobs) -----------------------


def check_submit_job(user, dataset, application) -> None:
    """A job on compute-only data: a person named on the organisation's approved application."""
    if dataset.data_class != "compute_only":
        raise Refused(_("%(dataset)s is %(dataset_data_class)s data: sandbox jobs run on compute-only "
                        "datasets")
                      % {"dataset": dataset.slug, "dataset_data_class": dataset.get_data_class_display()})
    check_run_job(user, dataset, application)


def check_decide_job(user, job) -> None:
    """Approving or rejecting a job, and reviewing its output: stewards of the bureau that
    owns the data, never on their own organisation's job."""
    _require_role(user, Role.STEWARD, doing=_("deciding a job"))
    if job.dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(job_dataset_owner)s decide jobs on %(job_dataset_slug)s")
                      % {"job_dataset_owner": job.dataset.owner, "job_dataset_slug": job.dataset.slug})
    if job.organisation_id == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot decide their own organisation's job"))


def reviews_job_output(user, job) -> bool:
    """The run's masked log, the checks' findings and the held output before release: what the
    job wrote, for stewards of the bureau that owns the data only (not the applicant, not
    other bureaus, not auditors: they read the fixed categories and the events)."""
    return has_role(user, Role.STEWARD) and job.dataset.owner_id == user.organisation_id


def check_open_held_output(user, job) -> None:
    """Opening a job's held output file by file, to review it."""
    _require_role(user, Role.STEWARD, doing=_("opening a job's held output"))
    if job.dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(job_dataset_owner)s open the outputs of jobs on "
                        "%(job_dataset_slug)s")
                      % {"job_dataset_owner": job.dataset.owner, "job_dataset_slug": job.dataset.slug})
    if not job.output_path:
        raise Refused(_("job #%(job)s holds no output (%(job_status)s)")
                      % {"job": job.pk, "job_status": job.get_status_display()})


def visible_jobs(user, qs: QuerySet) -> QuerySet:
    """The job's organisation, stewards of the data's bureau, auditors and admins."""
    return _held_or_owned(user, qs, "dataset__owner_id")


def visible_models(user, qs: QuerySet) -> QuerySet:
    """Model cards: as for jobs."""
    return _held_or_owned(user, qs, "job__dataset__owner_id")


def check_download_job_outputs(user, job) -> None:
    """A code-to-data job's released outputs go to the organisation that ran it."""
    _require_role(user, Role.APPLICANT, doing=_("downloading a job's outputs"))
    if job.organisation_id != user.organisation_id:
        raise Refused(_("job #%(job)s belongs to %(job_organisation)s, not to your organisation")
                      % {"job": job.pk, "job_organisation": job.organisation})
    if job.kind != "code" or job.status != "released":
        raise Refused(_("job #%(job)s has no released outputs (it is a %(job_kind)s job, %(job_status)s)")
                      % {"job": job.pk, "job_kind": job.get_kind_display(), "job_status": job.get_status_display()})


def check_download_model(user, model) -> None:
    """Weights go to the organisation whose job trained them, under its application."""
    _require_role(user, Role.APPLICANT, doing=_("downloading model weights"))
    if model.organisation_id != user.organisation_id:
        raise Refused(_("model #%(model)s was released to %(model_organisation)s, not to your organisation")
                      % {"model": model.pk, "model_organisation": model.organisation})


# --- crowd innovation: scenarios, challenges, teams, submissions, showcase (platform/innovation)


def check_open_scenario(user) -> None:
    """Scenarios and their challenges come from a bureau's plan: its stewards open them."""
    _require_role(user, Role.STEWARD, doing=_("opening a scenario or a challenge"))


def check_manage_scenario(user, scenario) -> None:
    _require_role(user, Role.STEWARD, doing=_("changing a scenario or its challenges"))
    if scenario.bureau_id != user.organisation_id:
        raise Refused(_("scenario %(scenario_slug)s belongs to %(scenario_bureau)s, not to your bureau")
                      % {"scenario_slug": scenario.slug, "scenario_bureau": scenario.bureau})


def check_follow_scenario(user) -> None:
    """Startups and researchers follow scenarios and say they are interested."""
    _require_role(user, Role.APPLICANT, doing=_("following a scenario"))


def check_join_challenge(user, challenge) -> None:
    """Teams are people of startups and labs (any organisation but the challenge's bureau,
    which holds the hidden test set)."""
    _require_role(user, Role.APPLICANT, doing=_("taking part in a challenge"))
    if user.organisation_id == challenge.scenario.bureau_id:
        raise Refused(_("%(user_organisation)s opened this challenge and holds its hidden test set: it "
                        "cannot compete")
                      % {"user_organisation": user.organisation})


def check_team_member(user, team) -> None:
    if role_of(user) is None:
        raise Refused(_("log in first"))
    if not team.members.filter(pk=user.pk).exists():
        raise Refused(_("you are not a member of team %(team_name)s") % {"team_name": team.name})


def check_invite(user, team) -> None:
    check_team_member(user, team)
    if team.captain_id != user.pk:
        raise Refused(_("only the captain of %(team_name)s invites members") % {"team_name": team.name})


def visible_submissions(user, qs: QuerySet) -> QuerySet:
    """A team's submissions: its members, the challenge's bureau's stewards, auditors and admins."""
    if role_of(user) is None:
        return qs.none()
    if reads_everything(user):
        return qs
    mine = Q(team__members=user)
    if has_role(user, Role.STEWARD):
        mine |= Q(challenge__scenario__bureau_id=user.organisation_id)
    return qs.filter(mine).distinct()


def sees_exact_scores(user, challenge) -> bool:
    """Exact public scores are never shown to teams (the Ladder releases theirs): only the
    bureau's stewards, auditors and admins see them."""
    if reads_everything(user):
        return True
    return has_role(user, Role.STEWARD) and user.organisation_id == challenge.scenario.bureau_id


def check_share_result(user, submission) -> None:
    """A team shares its own scored result on the showcase once the challenge has closed."""
    _require_role(user, Role.APPLICANT, doing=_("sharing a result"))
    check_team_member(user, submission.team)


def check_read_innovation_metrics(user) -> None:
    _require_role(user, Role.STEWARD, Role.AUDITOR, Role.ADMIN, doing=_("reading the crowd-innovation metrics"))
