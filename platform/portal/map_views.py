"""Map data for the portal's maps (static/miliao/map.js): GeoJSON from endpoints that apply
the download rules (issue 14: a page shows only what its viewer may download).

- ``/releases/<pk>/map.geojson``: the release itself to those who may download it (anyone
  logged in for a published open release; the owning bureau's stewards for any of theirs),
  a licence holder's own fingerprinted package (the copy their download holds, marked as
  downloaded), and to everyone else, anonymous visitors of an open release included, where
  it lies, to the catalogue's grid cell (about 0.8 km), as a choropleth of the released
  features whose boxes touch each cell.
  A release the viewer may not see at all is a 404, as on its page.
- ``/datasets/<slug>/map.geojson``: where a dataset's latest version lies, to the grid cell
  (what its DCAT record already says); compute-only data and datasets outside the viewer's
  catalogue are a 404.
- ``/map/basemap.geojson``: the offline basemap, drawn from the platform's own open layers
  (parcels, roads and buildings of the latest published release of each open dataset, or
  that release's own geometry where it holds none of those), for anyone logged in (they may
  download those releases anyway); empty for anonymous
  visitors, whose maps then show the data alone.

Coordinates are those of the released files (releases.mapdata), never finer."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET

from access import licensing, packages
from discovery import metadata
from catalog import rules as catalog_rules
from kernel import roles
from releases import mapdata
from releases import rules as releases_rules
from releases.actions import release_dir
from releases.models import Release, ReleaseStatus
from releases.writers import BBOX_COLUMN, BBOX_FIELDS

RELEASE_MAP_FEATURES = 1500
PACKAGE_MAP_FEATURES = 1500
BASEMAP_FEATURES = 3000  # per open release


def map_shows(user, release: Release) -> tuple[str, object]:
    """What a release's map shows ``user`` ("release", "package" or "coverage"; "" when the
    release has no file to map), and the licence whose package it shows."""
    if not release.outputs.get("geoparquet"):
        return "", None
    if releases_rules.sees_release_geometry(user, release):
        return "release", None
    if roles.role_of(user) is not None:
        licence = licensing.licence_to_view(user, release)
        if licence is not None:
            return "package", licence
    return "coverage", None


def release_map_data(user, release: Release) -> dict:
    """The GeoJSON a release's map draws for ``user``: see the module docstring."""
    shows, licence = map_shows(user, release)
    if not shows:
        return mapdata.feature_collection([], shows="")
    path = release_dir(release) / release.outputs["geoparquet"]["path"]
    if shows == "release":
        collection = _release(str(path), path.stat().st_mtime_ns) if path.exists() else mapdata.feature_collection([])
    elif shows == "package":
        # The package's first units, marked as they are downloaded: their geometry and kind
        # only. Viewing is not a download (no event, no count against the licence's limit),
        # so the attributes stay in the download.
        spec = dataclasses.replace(licensing.package_spec(release, licence), batch_rows=PACKAGE_MAP_FEATURES)
        first = next(packages.batches(spec), None)
        collection = (mapdata.table_features(first.select([c for c in ("kind", "geometry") if c in first.column_names]),
                                             max_features=PACKAGE_MAP_FEATURES) if first is not None
                      else mapdata.feature_collection([]))
    else:
        collection = (_coverage(str(path), path.stat().st_mtime_ns) if path.exists() else
                      mapdata.coverage((release.report or {}).get("coverage", {}).get("cells") or release.corpus.cells))
    return {**collection, "shows": shows}


@functools.lru_cache(maxsize=8)
def _release(path: str, mtime_ns: int) -> dict:
    """A release file's map, read once per file (a second for the demo's 16,000 units)."""
    return mapdata.release_features(Path(path), max_features=RELEASE_MAP_FEATURES)


@functools.lru_cache(maxsize=16)
def _coverage(path: str, mtime_ns: int) -> dict:
    """A release's covered cells (no counts), from its file's bbox column, once per file."""
    parquet = pq.ParquetFile(path)
    if BBOX_COLUMN in parquet.schema_arrow.names:
        bbox = parquet.read(columns=[BBOX_COLUMN]).column(BBOX_COLUMN).combine_chunks()
        bounds = np.stack([pc.struct_field(bbox, name).to_numpy(zero_copy_only=False) for name in BBOX_FIELDS], axis=1)
    else:
        geometry = parquet.read(columns=["geometry"]).column("geometry").to_numpy(zero_copy_only=False)
        bounds = shapely.bounds(shapely.from_wkb(geometry))
    return mapdata.covered_cells(bounds)


def _geojson(collection: dict) -> HttpResponse:
    response = HttpResponse(mapdata.dumps(collection), content_type="application/geo+json")
    response["Cache-Control"] = "private, max-age=60"
    return response


@gzip_page  # GeoJSON's repeated keys compress about tenfold; it reflects no secret (no BREACH)
@require_GET
def release_map(request, pk: int):
    releases = releases_rules.visible_releases(request.user, Release.objects.select_related("corpus__dataset"))
    if roles.role_of(request.user) is None:
        releases = releases.filter(corpus__dataset__data_class="open")
    return _geojson(release_map_data(request.user, get_object_or_404(releases, pk=pk)))


@gzip_page
@require_GET
def dataset_map(request, slug: str):
    datasets = catalog_rules.catalog_datasets(request.user, metadata.catalog_queryset())
    dataset = get_object_or_404(datasets, slug=slug)
    if dataset.data_class == "compute_only":
        raise Http404(_("可用不可见数据没有地图。"))
    version = dataset.versions.order_by("-version").first()
    return _geojson({**mapdata.coverage(list(version.cells) if version else []), "shows": "coverage"})


@gzip_page
@require_GET
def basemap(request):
    if roles.role_of(request.user) is None:
        return _geojson(mapdata.feature_collection([]))
    latest = {}
    for release in (Release.objects.filter(status=ReleaseStatus.PUBLISHED, corpus__dataset__data_class="open",
                                           outputs__has_key="geoparquet")
                    .select_related("corpus").order_by("corpus__dataset_id", "-published_at", "-pk")):
        latest.setdefault(release.corpus.dataset_id, release)
    files = []
    for release in latest.values():
        path = release_dir(release) / release.outputs["geoparquet"]["path"]
        if path.exists():
            files.append((str(path), path.stat().st_mtime_ns))
    return _geojson(_basemap(tuple(sorted(files))))


@functools.lru_cache(maxsize=4)
def _basemap(files: tuple[tuple[str, int], ...]) -> dict:
    features = []
    for path, _mtime in files:
        # Its reference layers where it has them; else (an open release of rooms by grid cell,
        # as the demo's) its own geometry.
        layers = mapdata.release_features(Path(path), max_features=BASEMAP_FEATURES, kinds=mapdata.BASEMAP_KINDS,
                                          attributes=False)["features"]
        features += layers or mapdata.release_features(Path(path), max_features=BASEMAP_FEATURES,
                                                       attributes=False)["features"]
    return {"type": "FeatureCollection", "features": features}


def page_config() -> dict:
    """What static/miliao/map.js reads from the page (json_script "map-config"): the basemap,
    and the legend's words in the page's language."""
    kinds = {"room": _("房间"), "floor": _("楼层"), "building": _("建筑"), "parcel": _("地块"), "road": _("道路"),
             "pipe": _("管线"), "cable": _("电缆"), "facility": _("设施")}
    return {
        "basemap": settings.MAP_BASEMAP.for_page(),
        "basemapSrc": "/map/basemap.geojson",
        "kinds": {kind: {"label": label, "colour": mapdata.KIND_COLOURS[kind]} for kind, label in kinds.items()},
        "labels": {
            "legend": _("图例"),
            "perCell": _("每个格网单元中已发布的要素数"),
            "features": _("要素数"),
            "covered": _("数据覆盖的格网单元"),
            "basemap": _("底图：平台的开放数据"),
            "empty": _("没有可显示的要素。"),
            "failed": _("地图数据加载失败。"),
            "other": _("其他"),
        },
    }
