"""Issuing download links and answering a recorded download with its package.

Issuing a link writes nothing (access.links); it refuses early, with the same reasons the
download itself would give. The download is recorded by access.actions.record_download
before the package is built, then streamed: GeoJSON chunk by chunk as it is made,
GeoParquet from a scratch file written batch by batch (Parquet's footer comes last)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from kernel.errors import InvalidInput, Refused
from kernel.paths import state_path

from . import actions, hooks, licensing, links, packages, rules
from .models import Download, Licence, PurposeCategory


def _format(fmt: str) -> str:
    if fmt not in packages.FORMATS:
        raise InvalidInput("format", _("choose one of %(packages_formats)s")
                                     % {"packages_formats": ', '.join(packages.FORMATS)})
    return fmt


def issue_licence_link(*, actor, licence: Licence, fmt: str, purpose: str = "") -> links.Link:
    """A link for one download under ``licence``, for ``actor`` alone."""
    fmt = _format(fmt)
    if purpose and purpose not in PurposeCategory.values:
        raise InvalidInput("purpose", _("choose one of %(purposecategory_values)s")
                                      % {"purposecategory_values": ', '.join(PurposeCategory.values)})
    with _refusals_announced(licence, actor):
        rules.check_download_licence(actor, licence)
        rules.check_licence(licence, user=actor, purpose=purpose)
    return links.sign(user=actor, fmt=fmt, licence=licence, purpose=purpose)


def follow_link(*, actor, token: str) -> Download:
    """Check a link and record its download (access.actions.record_download)."""
    claims = links.read(token)
    licence = Licence.objects.filter(pk=claims.licence_id).first() if claims.licence_id else None
    with _refusals_announced(licence, actor):
        return actions.record_download(actor=actor, claims=claims)


@contextmanager
def _refusals_announced(licence: Licence | None, user):
    """Refusals under a licence are announced (access.hooks.licence_refused), after the
    refused request has written nothing."""
    try:
        yield
    except Refused as exc:
        if licence is not None:
            hooks.announce(hooks.licence_refused, Licence, licence=licence, user=user, reason=exc.message)
        raise


def issue_release_link(*, actor, release, fmt: str) -> links.Link:
    """A link for one download of an open release, for any logged-in user."""
    rules.check_download_release(actor, release)
    fmt = _format(fmt)
    licensing.release_source(release)
    return links.sign(user=actor, fmt=fmt, release=release)


def package_response(download: Download) -> StreamingHttpResponse:
    """The recipient's package, streamed with bounded memory."""
    release, licence = download.release, download.licence
    spec = licensing.package_spec(release, licence)
    name = f"{release.corpus.dataset.slug}-r{release.pk}" + (f"-licence{licence.pk}" if licence else "")
    filename = name + packages.SUFFIXES[download.format]
    content_type = packages.CONTENT_TYPES[download.format]
    if download.format == "geojson":
        response = StreamingHttpResponse(packages.geojson_chunks(spec, name=name), content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
    else:
        scratch_root = state_path("scratch")
        scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="package-", dir=scratch_root))
        try:
            handle = open(packages.write_geoparquet(spec, scratch / filename), "rb")
        finally:
            shutil.rmtree(scratch)  # the open handle keeps the bytes until the response closes it
        response = FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    response["Cache-Control"] = "no-store"
    response["X-Miliao-Download"] = str(download.pk)
    return response
