"""Which releases can be licensed, the licence a viewer may see a release through, and the
package a download yields. Reads only; access.actions writes, and access.rules says what a
licence allows right now (check_licence)."""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import gettext as _

from catalog.models import DataClass
from kernel.errors import Conflict, Refused
from releases.actions import release_dir
from access.fingerprint import code_key
from releases.keys import open_release_key
from releases.models import Release, ReleaseStatus

from . import odrl, rules
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


def licence_to_view(user, release: Release) -> Licence | None:
    """The viewer's own licence on ``release`` under which they may download now, if any: a
    page may then draw their package, the copy their fingerprint marks. A licence whose
    downloads are used up still shows the package its holder already has."""
    for licence in Licence.objects.filter(release=release, organisation_id=user.organisation_id,
                                          status=LicenceStatus.ACTIVE).select_related("application"):
        try:
            rules.check_download_licence(user, licence)
            rules.check_licence(licence, user=user, count=max(1, licence.downloads_used))
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
