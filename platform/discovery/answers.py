"""The catalogue's answers that are the same for every reader of one audience, computed
once and kept: the dataset list (search included) and the DCAT pages.

A kept answer is found under a key made of everything it depends on:
- the catalogue's generation (CatalogGeneration), which every change to a dataset, a corpus
  version, an organisation, a release or a release policy replaces in the changing
  transaction (signals below), so no reader who can see a change gets an answer from before it;
- the audience (rules.catalog_audience: anonymous readers see open datasets only,
  logged-in readers every dataset), the only thing about the reader the answers depend on;
- the scheme and host (records carry absolute URLs), the language (labels) and the
  negotiated media type;
- the view and its whole query string.

Answers that depend on the reader beyond the audience (a dataset's whole record with the
releases this reader may see) are never kept. The generation is a fresh random number at
each change, not a count: a change rolled back with its transaction cannot hand its number,
and the answers kept under it, to a later change. Kept answers live in Django's cache
(per process by default) as rendered bytes, and expire after TTL_S."""
from __future__ import annotations

import hashlib
import secrets

from django.core.cache import cache
from django.http import HttpResponse
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import translation

from rest_framework.response import Response

from catalog import rules


TTL_S = 300
ROW = 1


def generation() -> int | None:
    """The catalogue's current generation; None when its row is missing (nothing is kept then).
    Plain SQL: asked on every kept answer, it skips the ORM's query compilation."""
    from django.db import connection

    from catalog.models import CatalogGeneration

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {CatalogGeneration._meta.db_table} WHERE id = %s", [ROW])
        row = cursor.fetchone()
    return row[0] if row else None


def bump(**_) -> None:
    """Replace the generation (a signal receiver: runs in the changing transaction)."""
    from catalog.models import CatalogGeneration

    value = secrets.randbits(62)
    if not CatalogGeneration.objects.filter(pk=ROW).update(value=value):
        CatalogGeneration.objects.update_or_create(pk=ROW, defaults={"value": value})


# What may be kept: answers rendered for machines. The browsable API's HTML carries the
# reader's name and CSRF token, so it is rendered for each request.
SHARED_MEDIA_TYPES = {"application/json", "application/ld+json", "text/turtle"}


def key(request, view: str) -> str | None:
    """The key of `view`'s answer to `request`, or None when nothing may be kept."""
    media_type = request.accepted_renderer.media_type
    if media_type not in SHARED_MEDIA_TYPES:
        return None
    current = generation()
    if current is None:
        return None
    parts = [
        str(current), rules.catalog_audience(request.user), request.scheme, request.get_host(),
        translation.get_language() or "", media_type, view, request.META.get("QUERY_STRING", ""),
    ]
    return "catalog-answer:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def answer(request, view: str, compute, *, etag=None) -> tuple[HttpResponse, str | None]:
    """`view`'s answer to `request` and its ETag (`etag(data)`, when asked for): a kept copy of
    the rendered bytes when there is one, else `compute()`'s data, rendered by the view as
    usual and kept once rendered (a 200 only)."""
    name = key(request, view)
    hit = cache.get(name) if name else None
    if hit is not None:
        content, content_type, tag = hit
        return HttpResponse(content, content_type=content_type), tag
    data = compute()
    tag = etag(data) if etag else None
    response = Response(data)
    if name:
        def keep(rendered):
            if rendered.status_code == 200:
                cache.set(name, (bytes(rendered.content), rendered["Content-Type"], tag), TTL_S)

        response.add_post_render_callback(keep)
    return response, tag


def connect() -> None:
    """Bump the generation on every change to what the catalogue's answers show."""
    from accounts.models import Organisation
    from corpora.models import CorpusVersion
    from releases.models import Release, ReleasePolicy

    from catalog.models import Dataset

    for model in (Dataset, CorpusVersion, Organisation, Release, ReleasePolicy):
        post_save.connect(bump, sender=model, dispatch_uid=f"catalog-answers-save-{model.__name__}")
        post_delete.connect(bump, sender=model, dispatch_uid=f"catalog-answers-delete-{model.__name__}")
    m2m_changed.connect(bump, sender=Dataset.holders.through, dispatch_uid="catalog-answers-holders")
