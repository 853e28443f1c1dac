"""Map data for the portal's interactive maps (static/miliao/map.js, Leaflet): GeoJSON
feature collections, small enough for a page, built from what a viewer may download.

No Django here. What a viewer may see is decided by the caller (portal.map_views, with
releases.rules); this module only turns geometries and their released attributes into
GeoJSON, and grid cells into a choropleth of coverage.

Coordinates are written as they were released, rounded to 1e-7 degrees (about 1 cm, far
below any release precision: one step of the release grid is 0.1 m or more), so a map's
vertex is the downloaded vertex and never nearer the raw geometry than that."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from corpora import grid
from corpora.store import COVER_LEVEL

from . import jsonable

# Colours per unit kind (the legend's labels are the page's, in its language).
KIND_COLOURS = {
    "room": "#4c8bf5", "floor": "#7aa7f7", "building": "#2f5fb3", "parcel": "#8fb27a",
    "road": "#6b6b6b", "pipe": "#d9822b", "cable": "#9b59b6", "facility": "#b3261e",
}
# A sequential ramp (ColorBrewer YlGnBu, 5 classes) for the coverage choropleth.
CLASS_COLOURS = ["#c7e9b4", "#7fcdbb", "#41b6c4", "#2c7fb8", "#253494"]
DIGITS = 7  # 1e-7 degrees: about 1 cm
# The open reference layers drawn as the offline basemap.
BASEMAP_KINDS = ("parcel", "road", "building")
HIDDEN_COLUMNS = ("geometry", "bbox", "_bbox")


def feature_collection(geoms: np.ndarray, properties: pa.Table | None = None, **members) -> dict:
    """A GeoJSON FeatureCollection of the geometries (rounded to DIGITS decimals) with one
    row of ``properties`` each, and any foreign members (``legend``, ``classes``...)."""
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms):
        geoms = shapely.transform(geoms, lambda c: np.round(c, DIGITS))
        parsed = json.loads("[" + ",".join(shapely.to_geojson(geoms).tolist()) + "]")
    else:
        parsed = []
    # Values a row does not have (a room's pipe diameter) are left out: the popup lists what is there.
    rows = ([{k: v for k, v in row.items() if v is not None} for row in properties.to_pylist()]
            if properties is not None else [{}] * len(parsed))
    features = [{"type": "Feature", "properties": row, "geometry": geometry} for row, geometry in zip(rows, parsed)]
    return {"type": "FeatureCollection", **members, "features": features}


def dumps(collection: dict) -> bytes:
    return json.dumps(collection, ensure_ascii=False, separators=(",", ":"), default=jsonable.as_text).encode()


def sample_table(table: pa.Table, max_features: int) -> pa.Table:
    """At most ``max_features`` rows, spread evenly over the table."""
    if table.num_rows <= max_features:
        return table
    return table.take(pa.array(np.linspace(0, table.num_rows - 1, max_features).astype(np.int64)))


def release_features(path: Path, *, max_features: int = 1500, max_row_groups: int = 32,
                     kinds: tuple[str, ...] | None = None, attributes: bool = True) -> dict:
    """A map of a release file (GeoParquet), from a few row groups spread over it: the whole
    district without reading a million geometries for one page. Row groups are patches along
    a Hilbert curve (releases.writers), so the groups spread along the file spread over the
    map. Each feature carries the file's attribute columns (``attributes``), or its kind."""
    if not path.exists():
        return feature_collection(np.empty(0, object))
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    columns = [c for c in names if c not in HIDDEN_COLUMNS] if attributes else ["kind"]
    groups = sorted({int(g) for g in np.linspace(0, max(parquet.num_row_groups - 1, 0), max_row_groups)})
    table = parquet.read_row_groups(groups, columns=[*columns, "geometry"]) if parquet.num_row_groups else None
    if table is None or table.num_rows == 0:
        return feature_collection(np.empty(0, object))
    if kinds is not None:
        table = table.filter(pc.is_in(table.column("kind"), pa.array(list(kinds))))
    return table_features(table, max_features=max_features)


def table_features(table: pa.Table, *, max_features: int = 1500) -> dict:
    """A map of released rows: their geometry and their other columns, parcels first so
    rooms and segments are drawn on top of them."""
    table = sample_table(table, max_features)
    if "kind" in table.column_names and table.num_rows:
        order = np.argsort(table.column("kind").to_numpy(zero_copy_only=False) != "parcel", kind="stable")
        table = table.take(pa.array(order))
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return feature_collection(geoms, table.select([c for c in table.column_names if c not in HIDDEN_COLUMNS]))


def coverage(cells: list[str]) -> dict:
    """Where a corpus lies, to the catalogue's grid cell: each cell's footprint, all of one
    class (the cells are 3D; those stacked over one footprint are one footprint on a map)."""
    if not cells:
        return feature_collection(np.empty(0, object), classes=[])
    lon0, lat0, _, lon1, lat1, _ = grid.decode(np.asarray(cells))
    boxes = np.stack([np.atleast_1d(lon0), np.atleast_1d(lat0), np.atleast_1d(lon1), np.atleast_1d(lat1)], axis=1)
    footprints = np.unique(boxes, axis=0)
    one_class = pa.table({"class": pa.array(np.zeros(len(footprints), np.int64))})
    return feature_collection(shapely.box(*footprints.T), one_class, classes=[{"colour": CLASS_COLOURS[2]}])


def covered_cells(bounds: np.ndarray, *, level: int = COVER_LEVEL, max_cells: int = 200_000) -> dict:
    """Where released features lie, to the grid cell: the cells at ``level`` (about 0.8 km at
    COVER_LEVEL) that the features' boxes (rows of lon_min, lat_min, lon_max, lat_max) touch,
    all of one class. Never a feature's own geometry, and no count per cell: exact counts are
    not differentially private, and two releases' counts would tell a single added unit. A box
    spanning more cells than ``max_cells`` in all is placed in the cell of its centre only."""
    bounds = np.asarray(bounds, np.float64).reshape(-1, 4)
    bounds = bounds[np.isfinite(bounds).all(axis=1)]
    if len(bounds) == 0:
        return feature_collection(np.empty(0, object), classes=[])
    c0, r0 = (np.atleast_1d(a).astype(np.int64) for a in grid.horizontal_cells(bounds[:, 0], bounds[:, 1], level))
    c1, r1 = (np.atleast_1d(a).astype(np.int64) for a in grid.horizontal_cells(bounds[:, 2], bounds[:, 3], level))
    columns, rows = c1 - c0 + 1, r1 - r0 + 1
    if (columns * rows).sum() > max_cells:
        centre_c, centre_r = grid.horizontal_cells((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2,
                                                   level)
        c0 = c1 = np.atleast_1d(centre_c).astype(np.int64)
        r0 = np.atleast_1d(centre_r).astype(np.int64)
        columns = rows = np.ones(len(bounds), np.int64)
    per = columns * rows
    box = np.repeat(np.arange(len(bounds)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    keys = (c0[box] + k % columns[box]) << 32 | (r0[box] + k // columns[box])
    cells = np.unique(keys)
    lon0, lat0, lon1, lat1 = grid.horizontal_bounds(cells >> 32, cells & 0xFFFFFFFF, level)
    one_class = pa.table({"class": pa.array(np.zeros(len(cells), np.int64))})
    return feature_collection(shapely.box(np.atleast_1d(lon0), np.atleast_1d(lat0), np.atleast_1d(lon1),
                                          np.atleast_1d(lat1)), one_class, classes=[{"colour": CLASS_COLOURS[2]}])
