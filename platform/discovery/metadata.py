"""The catalogue's read side: a dataset's metadata as plain data (its fields, its corpus
versions with extent, kinds, fields and covered grid cells, and its release history), and
the search over datasets. The DCAT export and the API both start from these records."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from django.db.models import F, Func, OuterRef, Prefetch, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import translation

from catalog import rules
from catalog.models import DataClass, Dataset, Theme
from corpora.models import CorpusVersion
from corpora.schema import UNIT_SCHEMA
from releases import rules as releases_rules
from releases.models import Release, ReleaseStatus

from .query import CatalogFilters, boxes_intersect, covers_cell, parse_filters

# The schema of every stored corpus version (corpora.store writes UNIT_SCHEMA): what a
# dataset without a version yet will hold.
DEFAULT_FIELDS = [{"name": f.name, "type": str(f.type)} for f in UNIT_SCHEMA]


def catalog_queryset() -> QuerySet:
    """Datasets with what their records need, in a fixed number of queries."""
    return Dataset.objects.select_related("owner").prefetch_related(
        "holders",
        Prefetch("versions", queryset=CorpusVersion.objects.order_by("-version")),
    )


def latest_versions(dataset_ids=None) -> QuerySet:
    """Each dataset's newest corpus version."""
    newest = CorpusVersion.objects.filter(dataset=OuterRef("dataset")).order_by("-version").values("pk")[:1]
    qs = CorpusVersion.objects.filter(pk=Subquery(newest))
    return qs if dataset_ids is None else qs.filter(dataset_id__in=dataset_ids)


# The five searched columns joined by a control character (U+001F) that no query holds, so
# that a match never spans two of them. On PostgreSQL a trigram index (catalog migration 0003)
# covers exactly UPPER() of this expression, as Django's icontains writes it: one indexed LIKE
# instead of five sequential ones. Keep the two in step (tests/catalog/test_catalog_load.py
# checks that PostgreSQL plans the index).
TEXT_SEPARATOR = "\x1f"


class SearchText(Func):
    """title, title_en, description, description_en and keywords (as JSON text), joined."""

    output_field = TextField()

    def __init__(self):
        super().__init__(F("title"), F("title_en"), F("description"), F("description_en"),
                         Cast("keywords", TextField()))

    def as_sql(self, compiler, connection, **extra_context):
        sep = "chr(31)" if connection.vendor == "postgresql" else "char(31)"
        return super().as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=f" || {sep} || ",
                              **extra_context)


def find(user, params) -> QuerySet:
    """The catalogue entries `user` sees (anonymous readers: open data) that match the filters
    of a query string (q, data_class, theme, district, bbox, cell; InvalidInput names a bad
    one): what the API's list and the portal's catalogue page both answer."""
    filters = parse_filters(params, data_classes=DataClass.values, themes=Theme.values)
    return search(rules.catalog_datasets(user, catalog_queryset()), filters)


def search(qs: QuerySet, filters: CatalogFilters) -> QuerySet:
    """The datasets matching every given filter. Text matches titles, descriptions and
    keywords in either language; bbox and cell test the newest version's extent and cells."""
    if filters.q:
        q = filters.q
        if TEXT_SEPARATOR in q:  # cannot match across columns: test each on its own
            qs = qs.filter(
                Q(title__icontains=q) | Q(title_en__icontains=q) | Q(description__icontains=q)
                | Q(description_en__icontains=q) | Q(keywords__icontains=q)
            )
        else:
            qs = qs.alias(search_text=SearchText()).filter(search_text__icontains=q)
    if filters.data_class:
        qs = qs.filter(data_class=filters.data_class)
    if filters.theme:
        qs = qs.filter(theme=filters.theme)
    if filters.district:
        qs = qs.filter(district__icontains=filters.district)
    if filters.spatial:
        # Extents and cell lists are JSON: test them here, over the newest versions of the
        # datasets left (a catalogue holds hundreds of datasets, not millions).
        versions = latest_versions(qs.values("pk")).values_list("dataset_id", "extent", "cells", "cell_level")
        qs = qs.filter(pk__in=[
            dataset_id for dataset_id, extent, cells, level in versions
            if (filters.bbox is None or boxes_intersect(public_extent(extent, level), filters.bbox))
            and (not filters.cell or covers_cell(cells, filters.cell))
        ])
    return qs


def public_extent(extent, level: int) -> list[float] | None:
    """A version's extent as the catalogue shows it (and searches it): out to the edges of
    the grid cells at ``level`` it touches. The corpus's own bounds are the true positions
    of its outermost units, to the millimetre; the catalogue tells where data lies to the
    cell, like its cell list."""
    if not extent or len(extent) != 4:
        return extent
    size = 512.0 / 2**level  # a level's cells span 512 / 2**level degrees, from -256
    west, south, east, north = extent
    return [math.floor(west / size) * size, math.floor(south / size) * size,
            math.ceil(east / size) * size, math.ceil(north / size) * size]


def version_record(version: CorpusVersion, *, cells: bool = True) -> dict:
    record = {
        "version": version.version,
        "units": version.units,
        "kinds": version.kinds,
        "extent": public_extent(version.extent, version.cell_level),
        "source_crs": version.source_crs,
        "fields": version.fields or DEFAULT_FIELDS,
        "cell_level": version.cell_level,
        "cell_count": len(version.cells),
        "sha256": version.sha256,
        "updated_at": version.created_at,
    }
    if cells:
        record["cells"] = version.cells
    return record


def release_history(user, dataset: Dataset) -> list[Release]:
    """The dataset's releases this user may see (published ones for everyone), newest first."""
    return list(releases_rules.visible_releases(
        user, Release.objects.filter(corpus__dataset=dataset).select_related("corpus", "policy")
    ).order_by("-created_at"))


def release_record(release: Release, url: Callable[[str, object], str]) -> dict:
    return {
        "id": release.pk,
        "version": release.corpus.version,
        "policy_version": release.policy.version,
        "status": release.status,
        "status_label": str(release.get_status_display()),
        "created_at": release.created_at,
        "published_at": release.published_at,
        "formats": sorted(release.outputs),
        "outputs": {
            fmt: {"bytes": out.get("bytes"), "sha256": out.get("sha256")} for fmt, out in release.outputs.items()
        },
        "url": url("release-page", release.pk),
    }


@cache
def choice_labels(choices: type) -> dict[str, dict[str, str]]:
    """Every label of a choices class in Chinese and English, translated once per process:
    one activation per language, where labels() per record took four per dataset (a quarter
    of a DCAT request's time in the profile of issue 18)."""
    by_language = {}
    for language in ("zh-hans", "en"):
        with translation.override(language):
            by_language[language] = {value: str(label) for value, label in choices.choices}
    zh, en = by_language["zh-hans"], by_language["en"]
    return {value: {"zh": zh[value], "en": en[value] if en[value] != zh[value] else ""} for value in zh}


def labels(label) -> dict[str, str]:
    """A choice's label in Chinese and English; English is empty until it is translated."""
    with translation.override("zh-hans"):
        zh = str(label)
    with translation.override("en"):
        en = str(label)
    return {"zh": zh, "en": en if en != zh else ""}


def dataset_record(
    dataset: Dataset, *, url: Callable[[str, object], str], releases: list[Release] | None = None
) -> dict:
    """Everything the catalogue says about a dataset, as plain data. `dataset` comes from
    catalog_queryset(); `url(name, arg)` makes an absolute URL of a named page.

    With `releases` (the ones the reader may see) the record is whole: every version with
    its covered cells, and the release history. Without, it is the summary a list shows:
    the newest version without its cells."""
    versions = list(dataset.versions.all())
    latest = versions[0] if versions else None
    whole = releases is not None
    record = {
        "id": dataset.pk,
        "slug": dataset.slug,
        "title": dataset.title,
        "title_en": dataset.title_en,
        "description": dataset.description,
        "description_en": dataset.description_en,
        "data_class": dataset.data_class,
        "data_class_label": dict(choice_labels(DataClass)[dataset.data_class]),
        "theme": dataset.theme,
        "theme_label": dict(choice_labels(Theme)[dataset.theme]),
        "district": dataset.district,
        "keywords": dataset.keywords,
        "owner": dataset.owner.code,
        "owner_name": {"zh": dataset.owner.name, "en": dataset.owner.name_en},
        "holders": sorted(h.code for h in dataset.holders.all()),
        "created_at": dataset.created_at,
        "updated_at": latest.created_at if latest else dataset.created_at,
        "extent": public_extent(latest.extent, latest.cell_level) if latest else None,
        "fields": (latest.fields if latest and latest.fields else DEFAULT_FIELDS),
        "latest_version": version_record(latest, cells=whole) if latest else None,
        "page_url": url("dataset-page", dataset.slug),
    }
    if whole:
        record["versions"] = [version_record(v) for v in versions]
        record["releases"] = [release_record(r, url) for r in releases]
    return record


def published_releases(dataset_ids) -> dict[int, list[Release]]:
    """Published releases by dataset, newest first: what the DCAT export lists."""
    by_dataset: dict[int, list[Release]] = {}
    qs = Release.objects.filter(corpus__dataset_id__in=dataset_ids, status=ReleaseStatus.PUBLISHED)
    for release in qs.select_related("corpus", "policy").order_by("-published_at", "-pk"):
        by_dataset.setdefault(release.corpus.dataset_id, []).append(release)
    return by_dataset
