"""The access workflow: applications (submit, ask for changes, resubmit, approve, reject),
licences (grant on approval, suspend, revoke, reinstate), downloads and leak findings.
Each step checks its rule, writes, and appends its event in one transaction."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import DataClass, Dataset
from corpora.ingest import IngestError, read_geometries
from kernel.errors import Conflict, InvalidInput, Refused
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of
from releases.keys import new_release_key, open_release_key
from releases.models import Release

from . import hooks, inputs, licensing, odrl, rules, tracing
from .links import LinkClaims, LinkExpired
from .models import (
    Application,
    ApplicationStatus,
    Download,
    LeakFinding,
    Licence,
    LicenceStatus,
)
from .packages import FORMATS, requestable_fields

DOWNLOAD_LIMIT_MAX, DOWNLOAD_LIMIT_DEFAULT = 1000, 10
EPSILON_DEFAULT, DELTA_DEFAULT = 1.0, 1e-6
REASON_MAX = 2000
_UNSET = object()


def _announce_after_commit(signal, **kwargs) -> None:
    """Tell access.hooks' receivers once this action's transaction has committed."""
    (obj,) = kwargs.values()
    transaction.on_commit(lambda: hooks.announce(signal, type(obj), **kwargs))


# --- applications --------------------------------------------------------------------------


def _request_payload(application: Application) -> dict:
    return {
        "dataset": application.dataset.slug,
        "release": application.release_id,
        "organisation": application.organisation.code,
        "purpose_category": application.purpose_category,
        "purpose": application.purpose,
        "fields": list(application.fields),
        "area": application.area,
        "duration_days": application.duration_days,
        "people": sorted(p.username for p in application.people.all()),
    }


def _request_inputs(application: Application) -> list[str]:
    inputs = [subject_of(application.dataset)]
    if application.release_id is not None:
        inputs.append(subject_of(application.release))
    return inputs


@transaction.atomic(durable=True)
def submit_application(
    *,
    actor,
    dataset: Dataset,
    purpose: str,
    purpose_category: str | None = None,
    release: Release | None = None,
    fields=None,
    area=None,
    duration_days: int | None = None,
    people=None,
) -> Application:
    """Apply for a conditional or compute-only dataset. Without ``release``, the application
    is for the latest published release at that time (if any); without ``people``, for the
    applicant alone."""
    rules.check_submit_application(actor, dataset)
    if release is None and dataset.data_class != DataClass.OPEN:
        release = licensing.latest_published(dataset)
    clean = inputs.clean_request(
        actor=actor,
        dataset=dataset,
        release=release,
        purpose_category=purpose_category,
        purpose=purpose,
        fields=fields,
        area=area,
        duration_days=duration_days,
        people=people,
    )
    if Application.objects.filter(
        dataset=dataset,
        organisation=actor.organisation,
        status__in=[ApplicationStatus.SUBMITTED, ApplicationStatus.CHANGES_REQUESTED],
    ).exists():
        raise Conflict(_("%(actor_organisation)s already has an application for %(dataset)s awaiting review")
                       % {"actor_organisation": actor.organisation, "dataset": dataset.slug})
    people = clean.pop("people")
    application = Application.objects.create(
        dataset=dataset, organisation=actor.organisation, applicant=actor, **clean
    )
    application.people.set(people)
    record(
        EventType.ACCESS_APPLICATION_SUBMITTED,
        actor=actor_of(actor),
        subject=subject_of(application),
        payload=_request_payload(application),
        inputs=_request_inputs(application),
    )
    _announce_after_commit(hooks.application_submitted, application=application)
    return application


def _locked(application: Application) -> Application:
    # Lock the row: two stewards deciding at once must not both win.
    return (
        Application.objects.select_for_update()
        .select_related("dataset__owner", "organisation")
        .get(pk=application.pk)
    )


def _reason(reason: str, *, required: str | None) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise InvalidInput("reason", required)
    if len(reason) > REASON_MAX:
        raise InvalidInput("reason", _("at most %(reason_max)s characters") % {"reason_max": REASON_MAX})
    return reason


def _require_submitted(application: Application) -> None:
    if application.status != ApplicationStatus.SUBMITTED:
        raise Conflict(_("application #%(application)s is already %(application_status)s")
                       % {"application": application.pk, "application_status": application.get_status_display()})


def _decided(actor, application: Application, status: str, reason: str) -> None:
    application.status = status
    application.reviewer = actor
    application.decision_reason = reason
    application.decided_at = timezone.now()
    application.save(update_fields=["status", "reviewer", "decision_reason", "decided_at"])


@transaction.atomic(durable=True)
def request_changes(*, actor, application: Application, reason: str) -> Application:
    """The steward sends the application back, saying what to change."""
    return _send_back(
        actor, application, ApplicationStatus.CHANGES_REQUESTED, reason,
        required="say what should change", event=EventType.ACCESS_APPLICATION_CHANGES_REQUESTED,
    )


def _send_back(actor, application: Application, status: str, reason: str, *, required: str, event: str) -> Application:
    """Reject or ask for changes: a steward's decision that must say why."""
    application = _locked(application)
    rules.check_decide_application(actor, application)
    reason = _reason(reason, required=required)
    _require_submitted(application)
    _decided(actor, application, status, reason)
    record(
        event,
        actor=actor_of(actor),
        subject=subject_of(application),
        payload={"dataset": application.dataset.slug, "reason": reason},
    )
    return application


@transaction.atomic(durable=True)
def resubmit_application(
    *,
    actor,
    application: Application,
    purpose=_UNSET,
    purpose_category=_UNSET,
    release=_UNSET,
    fields=_UNSET,
    area=_UNSET,
    duration_days=_UNSET,
    people=_UNSET,
) -> Application:
    """The applicant's organisation answers a request for changes; what is not given stays."""
    application = _locked(application)
    rules.check_resubmit_application(actor, application)
    if application.status != ApplicationStatus.CHANGES_REQUESTED:
        raise Conflict(
            _("application #%(application)s is %(application_status)s; only one sent back for changes can "
              "be resubmitted")
            % {"application": application.pk, "application_status": application.get_status_display()}
        )

    def given(value, current):
        return current if value is _UNSET else value

    clean = inputs.clean_request(
        actor=actor,
        dataset=application.dataset,
        release=given(release, application.release),
        purpose_category=given(purpose_category, application.purpose_category),
        purpose=given(purpose, application.purpose),
        fields=given(fields, application.fields),
        area=given(area, _area_input(application.area)),
        duration_days=given(duration_days, application.duration_days),
        people=given(people, list(application.people.all())),
    )
    application.people.set(clean.pop("people"))
    for name, value in clean.items():
        setattr(application, name, value)
    application.status = ApplicationStatus.SUBMITTED
    application.save(update_fields=[*clean, "status"])
    record(
        EventType.ACCESS_APPLICATION_RESUBMITTED,
        actor=actor_of(actor),
        subject=subject_of(application),
        payload={**_request_payload(application), "answering": application.decision_reason},
        inputs=_request_inputs(application),
    )
    _announce_after_commit(hooks.application_submitted, application=application)
    return application


def _area_input(area: dict | None) -> dict | None:
    if area is None:
        return None
    return {"grid_code": area["grid_code"]} if "grid_code" in area else {"bbox": area["bbox"]}


@transaction.atomic(durable=True)
def approve_application(
    *, actor, application: Application, reason: str = "", epsilon=None, delta=None, download_limit=None
) -> Application:
    """Approve. Conditional data: a licence on the release (the one applied for, else the
    latest published), allowing ``download_limit`` downloads. Compute-only data: the right to
    run jobs, with a privacy budget of (``epsilon``, ``delta``) granted in the same transaction."""
    application = _locked(application)
    rules.check_decide_application(actor, application)
    reason = _reason(reason, required=None)
    _require_submitted(application)
    dataset = application.dataset
    if dataset.data_class == DataClass.COMPUTE_ONLY:
        if download_limit is not None:
            raise InvalidInput("download_limit", _("%(dataset)s is compute-only: it is never downloaded")
                                                 % {"dataset": dataset.slug})
        from budgets.actions import grant_budget  # a sibling bounded context, called inside this transaction

        # Before this action's own event: the budget's lock is always taken before the log's.
        budget = grant_budget(
            actor=actor,
            organisation=application.organisation,
            dataset=dataset,
            epsilon=EPSILON_DEFAULT if epsilon is None else epsilon,
            delta=DELTA_DEFAULT if delta is None else delta,
            source=subject_of(application),
        )
        _decided(actor, application, ApplicationStatus.APPROVED, reason)
        record(
            EventType.ACCESS_APPLICATION_APPROVED,
            actor=actor_of(actor),
            subject=subject_of(application),
            payload={
                "dataset": dataset.slug,
                "reason": reason,
                "grants": "jobs",
                "budget": subject_of(budget),
            },
        )
        return application
    if dataset.data_class != DataClass.CONDITIONAL:
        raise Conflict(_("%(dataset)s is %(dataset_data_class)s: it needs no application")
                       % {"dataset": dataset.slug, "dataset_data_class": dataset.get_data_class_display()})
    if epsilon is not None or delta is not None:
        raise InvalidInput("epsilon", _("a privacy budget goes with compute-only data only"))
    limit = DOWNLOAD_LIMIT_DEFAULT if download_limit is None else download_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= DOWNLOAD_LIMIT_MAX:
        raise InvalidInput("download_limit", _("a whole number from 1 to %(download_limit_max)s")
                                             % {"download_limit_max": DOWNLOAD_LIMIT_MAX})
    release = application.release or licensing.latest_published(dataset)
    if release is not None:
        licensing.check_licensable(release, dataset)
        offered = requestable_fields(licensing.release_source(release))
        missing = [f for f in application.fields if f not in offered]
        if missing:
            raise Conflict(
                _("release #%(release)s has no column %(missing)r; ask the applicant for changes")
                % {"release": release.pk, "missing": missing[0]}
            )
    if release is not None and application.release_id is None:
        application.release = release  # the approval fixes the version
        application.save(update_fields=["release"])
    _decided(actor, application, ApplicationStatus.APPROVED, reason)
    # Without a published release there is nothing to license yet: the approval stands and
    # says so; the organisation applies again for a release once one is published.
    record(
        EventType.ACCESS_APPLICATION_APPROVED,
        actor=actor_of(actor),
        subject=subject_of(application),
        payload={
            "dataset": dataset.slug,
            "reason": reason,
            "grants": "licence" if release else "nothing yet",
            "release": release.pk if release else None,
        },
    )
    if release is not None:
        _grant_licence(actor, application, release, limit)
    return application


def _grant_licence(actor, application: Application, release: Release, download_limit: int) -> Licence:
    dataset = application.dataset
    key, encrypted = new_release_key()
    valid_from = timezone.now()
    valid_until = valid_from + timedelta(days=application.duration_days)
    people = list(application.people.all()) or [application.applicant]
    fields = list(application.fields) or requestable_fields(licensing.release_source(release))
    licence = Licence.objects.create(
        application=application,
        release=release,
        organisation=application.organisation,
        policy={},
        valid_from=valid_from,
        valid_until=valid_until,
        download_limit=download_limit,
        fingerprint_key_encrypted=encrypted,
        granted_by=actor,
    )
    licence.users.set(people)
    licence.policy = odrl.build_policy(
        uid=odrl.uri("licence", licence.pk),
        assigner=odrl.uri("org", dataset.owner.code),
        assignee=odrl.uri("org", application.organisation.code),
        target=odrl.uri("release", release.pk),
        purpose=application.purpose_category,
        valid_from=valid_from,
        valid_until=valid_until,
        download_limit=download_limit,
        recipients=[odrl.uri("user", p.username) for p in people],
        area=application.area["bbox"] if application.area else None,
        fields=fields,
        fingerprint_key_id=odrl.key_id(key),
    )
    licence.save(update_fields=["policy"])
    record(
        EventType.ACCESS_LICENCE_GRANTED,
        actor=actor_of(actor),
        subject=subject_of(licence),
        payload={
            "dataset": dataset.slug,
            "organisation": application.organisation.code,
            "policy": licence.policy,
        },
        inputs=[subject_of(application), subject_of(release)],
    )
    return licence


@transaction.atomic(durable=True)
def reject_application(*, actor, application: Application, reason: str) -> Application:
    return _send_back(
        actor, application, ApplicationStatus.REJECTED, reason,
        required="a rejection must say why", event=EventType.ACCESS_APPLICATION_REJECTED,
    )


# --- licences ----------------------------------------------------------------------------


def _locked_licence(licence: Licence) -> Licence:
    return (
        Licence.objects.select_for_update(of=("self",))
        .select_related("release__corpus__dataset__owner", "organisation", "application")
        .get(pk=licence.pk)
    )


def _set_status(actor, licence: Licence, status: str, reason: str, event: str, **extra) -> Licence:
    licence.status = status
    licence.status_reason = reason
    licence.status_changed_at = timezone.now()
    licence.save(update_fields=["status", "status_reason", "status_changed_at"])
    record(
        event,
        actor=actor_of(actor),
        subject=subject_of(licence),
        payload={
            "organisation": licence.organisation.code,
            "release": licence.release_id,
            "reason": reason,
            **extra,
        },
    )
    return licence


@transaction.atomic(durable=True)
def suspend_licence(*, actor, licence: Licence, reason: str, automatic: bool = False) -> Licence:
    """Stop downloads until a steward reinstates the licence. ``actor=None`` with
    ``automatic=True`` is the platform itself (active defense); a person must be a steward of
    the owning bureau, not of the licensed organisation."""
    licence = _locked_licence(licence)
    if actor is None:
        if not automatic:
            raise Refused(_("only the platform's own defense suspends a licence without a steward"))
    else:
        rules.check_manage_licence(actor, licence)
    reason = _reason(reason, required="say why the licence is suspended")
    if licence.status != LicenceStatus.ACTIVE:
        raise Conflict(_("licence #%(licence)s is %(licence_status)s; only an active licence can be "
                         "suspended")
                       % {"licence": licence.pk, "licence_status": licence.get_status_display()})
    return _set_status(
        actor, licence, LicenceStatus.SUSPENDED, reason, EventType.ACCESS_LICENCE_SUSPENDED, automatic=automatic
    )


@transaction.atomic(durable=True)
def revoke_licence(*, actor, licence: Licence, reason: str) -> Licence:
    """End the licence for good (a steward of the owning bureau)."""
    licence = _locked_licence(licence)
    rules.check_manage_licence(actor, licence)
    reason = _reason(reason, required="say why the licence is revoked")
    if licence.status == LicenceStatus.REVOKED:
        raise Conflict(_("licence #%(licence)s is already revoked") % {"licence": licence.pk})
    return _set_status(actor, licence, LicenceStatus.REVOKED, reason, EventType.ACCESS_LICENCE_REVOKED)


@transaction.atomic(durable=True)
def reinstate_licence(*, actor, licence: Licence, reason: str = "") -> Licence:
    """Lift a suspension (a steward of the owning bureau); a revoked licence stays revoked."""
    licence = _locked_licence(licence)
    rules.check_manage_licence(actor, licence)
    reason = _reason(reason, required=None)
    if licence.status != LicenceStatus.SUSPENDED:
        raise Conflict(
            _("licence #%(licence)s is %(licence_status)s; only a suspended licence can be reinstated")
            % {"licence": licence.pk, "licence_status": licence.get_status_display()}
        )
    return _set_status(actor, licence, LicenceStatus.ACTIVE, reason, EventType.ACCESS_LICENCE_REINSTATED)


# --- downloads ---------------------------------------------------------------------------


@transaction.atomic(durable=True)
def record_download(*, actor, claims: LinkClaims) -> Download:
    """Count and record one download of a genuine, unexpired link, or refuse and write
    nothing. Under a licence the licence row is locked, so concurrent links cannot together
    pass the download limit."""
    rules.check_use_download_link(actor, claims.user_id)
    if claims.format not in FORMATS:
        raise InvalidInput("format", _("choose one of %(formats)s") % {"formats": ', '.join(FORMATS)})
    licence = None
    if claims.licence_id is not None:
        licence = Licence.objects.filter(pk=claims.licence_id).first()
        if licence is None:
            raise Refused(_("licence #%(claims_licence_id)s no longer exists")
                          % {"claims_licence_id": claims.licence_id})
        licence = _locked_licence(licence)
        rules.check_download_licence(actor, licence)
        rules.check_licence(licence, user=actor, purpose=claims.purpose)
        release = licence.release
    else:
        release = Release.objects.select_related("corpus__dataset").filter(pk=claims.release_id).first()
        if release is None:
            raise Refused(_("release #%(claims_release_id)s no longer exists")
                          % {"claims_release_id": claims.release_id})
        rules.check_download_release(actor, release)
    if Download.objects.filter(nonce=claims.nonce).exists():
        raise LinkExpired(_("this download link was already used; ask for a new one"))
    try:
        with transaction.atomic():
            download = Download.objects.create(
                licence=licence,
                release=release,
                user=actor,
                organisation=actor.organisation,
                format=claims.format,
                nonce=claims.nonce,
                fingerprinted=licence is not None,
            )
    except IntegrityError:  # the same link, used at the same moment
        raise LinkExpired(_("this download link was already used; ask for a new one")) from None
    payload = {
        "release": release.pk,
        "format": claims.format,
        "user": actor.username,
        "organisation": actor.organisation.code if actor.organisation_id else None,
    }
    if licence is not None:
        licence.downloads_used += 1
        licence.save(update_fields=["downloads_used"])
        payload.update(
            licence=licence.pk,
            count=licence.downloads_used,
            limit=licence.download_limit,
            purpose=claims.purpose or licence.application.purpose_category,
        )
    record(
        EventType.ACCESS_DOWNLOADED,
        actor=actor_of(actor),
        subject=subject_of(download),
        payload=payload,
        inputs=[subject_of(licence) if licence is not None else subject_of(release)],
    )
    _announce_after_commit(hooks.downloaded, download=download)
    return download


# --- leak tracing --------------------------------------------------------------------------


def leak_upload_limit() -> int:
    return settings.MILIAO_LEAK_UPLOAD_MAX_BYTES


def trace_leak(*, actor, upload, declared_crs: str = "") -> LeakFinding:
    """An auditor's upload of a leaked file: read its geometries, run the fingerprint detector
    against every licensed release, record the finding, and tell active defense
    (access.hooks) once it is committed. ``upload`` is a Django UploadedFile."""
    rules.check_trace_leak(actor)
    name = Path(upload.name or "").name
    if not name:
        raise InvalidInput("file", _("choose a file to upload"))
    limit = leak_upload_limit()
    if upload.size > limit:
        raise InvalidInput("file", _("the file is %(upload_size)s bytes, over the %(limit)s-byte limit")
                                   % {"upload_size": upload.size, "limit": limit})
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="miliao-leak-") as scratch:
        path = Path(scratch) / f"leak{Path(name).suffix.lower()}"
        with open(path, "wb") as out:
            for chunk in upload.chunks():
                digest.update(chunk)
                out.write(chunk)
        try:
            leaked = read_geometries(path, declared_crs=declared_crs.strip() or None, max_bytes=limit)
        except IngestError as exc:
            raise InvalidInput("file", str(exc)) from None
    licensed = _licensed_releases()
    result = tracing.trace(leaked.geometries, licensed)
    return _record_finding(
        actor=actor, name=name, sha256=digest.hexdigest(), leaked_units=len(leaked.geometries), result=result
    )


def _licensed_releases() -> list[tracing.LicensedRelease]:
    keys: dict[int, dict[str, bytes]] = {}
    releases: dict[int, Release] = {}
    for licence in Licence.objects.select_related("release").order_by("pk"):
        releases[licence.release_id] = licence.release
        keys.setdefault(licence.release_id, {})[str(licence.pk)] = open_release_key(
            licence.fingerprint_key_encrypted
        )
    out = []
    for release_id, release in releases.items():
        precision = licensing.release_precision(release)
        if precision <= 0 or not release.outputs.get("geoparquet"):
            continue
        out.append(
            tracing.LicensedRelease(
                release_id,
                licensing.release_source(release),
                precision,
                keys[release_id],
                code_key=licensing.release_code_key(release),
            )
        )
    return out


@transaction.atomic(durable=True)
def _record_finding(
    *, actor, name: str, sha256: str, leaked_units: int, result: tracing.Trace
) -> LeakFinding:
    licence = (
        Licence.objects.select_related("organisation").get(pk=result.licence_id)
        if result.licence_id
        else None
    )
    finding = LeakFinding.objects.create(
        uploaded_by=actor,
        file_name=name[:255],
        file_sha256=sha256,
        leaked_units=leaked_units,
        release_id=result.release_id,
        licence=licence,
        recipient=licence.organisation if licence else None,
        p_value=result.p_value,
        matched_units=result.matched_units,
        detail={"releases": result.per_release},
    )
    if licence is not None:
        inputs = [subject_of(licence)]
    elif result.release_id is not None:
        inputs = [f"{Release._meta.label_lower}:{result.release_id}"]
    else:
        inputs = []
    record(
        EventType.ACCESS_LEAK_TRACED,
        actor=actor_of(actor),
        subject=subject_of(finding),
        payload={
            "file_sha256": sha256,
            "leaked_units": leaked_units,
            "matched_units": result.matched_units,
            "release": result.release_id,
            "licence": licence.pk if licence else None,
            "recipient": licence.organisation.code if licence else None,
            "p_value": result.p_value,
        },
        inputs=inputs,
    )
    transaction.on_commit(lambda: hooks.leak_found(finding))
    return finding
