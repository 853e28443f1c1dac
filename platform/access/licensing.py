"""Enforcement: what a licence allows right now (its status, then its ODRL policy), which
releases can be licensed, and the package a download yields. Reads only; access.actions
writes."""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import permissions
from catalog.models import DataClass
from kernel.errors import Conflict, Refused
from releases.actions import release_dir
from releases.fingerprint import code_key
from releases.keys import open_release_key
from releases.models import Release, ReleaseStatus

from . import odrl
from .models import Licence, LicenceStatus
from .packages import PackageSpec


def release_source(release: Release) -> Path:
    """The release's GeoParquet file, which every package is cut from."""
    output = (release.outputs or {}).get("geoparquet")
    if output is None:
        raise Conflict(
            _("release #%(release)s has no GeoParquet output, which download packages are built from; "
              "build a release whose policy lists geoparquet among its outputs")
            % {"release": release.pk}
        )
    return release_dir(release) / output["path"]


def release_precision(release: Release) -> float:
    """The release grid (metres) its geometry is quantized to; 0 when it is not quantized."""
    report = release.report or {}
    return float((report.get("lightweight") or {}).get("precision_m") or 0.0)


def release_code_key(release: Release) -> bytes:
    """The release's fingerprint code key (the per-group biases every licence shares)."""
    return code_key(open_release_key(release.key_encrypted))


def check_licensable(release: Release, dataset) -> None:
    """A release a licence can be granted on: published, of this conditional dataset,
    with GeoParquet output on a grid the fingerprint can move units along."""
    if release.corpus.dataset_id != dataset.pk:
        raise Conflict(_("release #%(release)s is of %(release_corpus_dataset_slug)s, not of %(dataset)s")
                       % {"release": release.pk,
                          "release_corpus_dataset_slug": release.corpus.dataset.slug,
                          "dataset": dataset.slug})
    if release.status != ReleaseStatus.PUBLISHED:
        raise Conflict(_("release #%(release)s is %(release_status)s; only a published release can be "
                         "licensed")
                       % {"release": release.pk, "release_status": release.get_status_display()})
    release_source(release)
    if dataset.data_class == DataClass.CONDITIONAL and release_precision(release) <= 0:
        raise Conflict(
            _("release #%(release)s is not quantized (lightweight precision_m is 0), so it cannot carry a "
              "recipient fingerprint; release it again with a precision")
            % {"release": release.pk}
        )


def latest_published(dataset) -> Release | None:
    return (
        Release.objects.filter(corpus__dataset=dataset, status=ReleaseStatus.PUBLISHED)
        .order_by("-published_at", "-pk")
        .first()
    )


def check_licence(licence: Licence, *, user, purpose: str = "", count: int | None = None, at=None) -> None:
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


def licence_to_view(user, release: Release) -> Licence | None:
    """The viewer's own licence on ``release`` under which they may download now, if any: a
    page may then draw their package, the copy their fingerprint marks. A licence whose
    downloads are used up still shows the package its holder already has."""
    for licence in Licence.objects.filter(release=release, organisation_id=user.organisation_id,
                                          status=LicenceStatus.ACTIVE).select_related("application"):
        try:
            permissions.check_download_licence(user, licence)
            check_licence(licence, user=user, count=max(1, licence.downloads_used))
        except Refused:
            continue
        return licence
    return None


def package_spec(release: Release, licence: Licence | None) -> PackageSpec:
    """What the download holds: the whole open release, or what the licence's policy grants,
    fingerprinted with the licence's key."""
    source = release_source(release)
    if licence is None:
        return PackageSpec(source=source)
    fields, area = odrl.package_terms(licence.policy)
    return PackageSpec(
        source=source,
        fields=fields,
        area=area,
        fingerprint_key=open_release_key(licence.fingerprint_key_encrypted),
        precision_m=release_precision(release),
        code_key=release_code_key(release),
    )
