"""Who submits and decides sandbox jobs, reviews their held output, and receives what they
release (outputs, model weights)."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from access.rules import check_run_job
from catalog.models import DataClass
from kernel.errors import Refused
from kernel.roles import Role, has_role, held_or_owned, require_role

from .models import JobKind, JobStatus


def check_submit_job(user, dataset, application) -> None:
    """A job on compute-only data: a person named on the organisation's approved application."""
    if dataset.data_class != DataClass.COMPUTE_ONLY:
        raise Refused(_("%(dataset)s is %(dataset_data_class)s data: sandbox jobs run on compute-only "
                        "datasets")
                      % {"dataset": dataset.slug, "dataset_data_class": dataset.get_data_class_display()})
    check_run_job(user, dataset, application)


def check_decide_job(user, job) -> None:
    """Approving or rejecting a job, and reviewing its output: stewards of the bureau that
    owns the data, never on their own organisation's job."""
    require_role(user, Role.STEWARD, doing=_("deciding a job"))
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
    require_role(user, Role.STEWARD, doing=_("opening a job's held output"))
    if job.dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(job_dataset_owner)s open the outputs of jobs on "
                        "%(job_dataset_slug)s")
                      % {"job_dataset_owner": job.dataset.owner, "job_dataset_slug": job.dataset.slug})
    if not job.output_path:
        raise Refused(_("job #%(job)s holds no output (%(job_status)s)")
                      % {"job": job.pk, "job_status": job.get_status_display()})


def visible_jobs(user, qs: QuerySet) -> QuerySet:
    """The job's organisation, stewards of the data's bureau, auditors and admins."""
    return held_or_owned(user, qs, "dataset__owner_id")


def visible_models(user, qs: QuerySet) -> QuerySet:
    """Model cards: as for jobs."""
    return held_or_owned(user, qs, "job__dataset__owner_id")


def check_download_job_outputs(user, job) -> None:
    """A code-to-data job's released outputs go to the organisation that ran it."""
    require_role(user, Role.APPLICANT, doing=_("downloading a job's outputs"))
    if job.organisation_id != user.organisation_id:
        raise Refused(_("job #%(job)s belongs to %(job_organisation)s, not to your organisation")
                      % {"job": job.pk, "job_organisation": job.organisation})
    if job.kind != JobKind.CODE or job.status != JobStatus.RELEASED:
        raise Refused(_("job #%(job)s has no released outputs (it is a %(job_kind)s job, %(job_status)s)")
                      % {"job": job.pk, "job_kind": job.get_kind_display(), "job_status": job.get_status_display()})


def check_download_model(user, model) -> None:
    """Weights go to the organisation whose job trained them, under its application."""
    require_role(user, Role.APPLICANT, doing=_("downloading model weights"))
    if model.organisation_id != user.organisation_id:
        raise Refused(_("model #%(model)s was released to %(model_organisation)s, not to your organisation")
                      % {"model": model.pk, "model_organisation": model.organisation})
