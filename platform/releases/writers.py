"""Write a release table (UNIT_SCHEMA-like, WKB geometry in EPSG:4490) to compact files:
GeoParquet 1.1 (zstd), GeoPackage and RFC 7946 GeoJSON.

Every file is written under a hidden temporary name in its own directory and renamed into
place once complete, so a crash never leaves a partial file under a final name. GeoParquet
and GeoPackage can be written in another CRS, reprojected with pyproj; GeoJSON is always
WGS 84 lon/lat, as RFC 7946 requires.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS, Transformer

from corpora.schema import STORAGE_CRS

GEOPARQUET_VERSION = "1.1.0"
GEOMETRY_COLUMN = "geometry"
# GeoParquet 1.1's bbox covering column: each row's extent, whose per-row-group statistics let
# a reader skip the row groups outside its window without decoding a geometry.
BBOX_COLUMN = "bbox"
BBOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
BBOX_TYPE = pa.struct([(name, pa.float64()) for name in BBOX_FIELDS])
# Rows per row group: a batch is written in Hilbert order of its rows' centres, in row groups of at
# most this many, so each row group covers a compact patch of the batch's extent.
ROW_GROUP_ROWS = 8_192
COORDINATES_KEY = "miliao:coordinates"  # Parquet key-value metadata and GeoJSON foreign member
SUFFIXES = {"geoparquet": ".parquet", "geopackage": ".gpkg", "geojson": ".geojson"}
# GeoParquet type names by shapely type id; a LinearRing is written as a LineString.
_TYPE_NAMES = (
    "Point",
    "LineString",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
# Little-endian 2D WKB of a Polygon with one ring of five points: a quadrilateral, the common room.
_QUAD_HEADER = struct.pack("<BIII", 1, 3, 1, 5)
_QUAD_SIZE = len(_QUAD_HEADER) + 5 * 2 * 8


def coordinate_label(shift: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a release's coordinates are, to be said inside its files.

    ``shift`` is the shift mode's public description (``ShiftMode.describe()``; None when
    unshifted). Returns {"crs": PROJJSON, "note": {...}}: the CRS goes into the GeoParquet
    "geo" metadata and the GeoPackage's spatial reference system; the note into the Parquet
    key-value metadata and a GeoJSON foreign member (both under COORDINATES_KEY). GCJ-02 and
    shifted CGCS2000 have no EPSG code, so their PROJJSON carries a name and a remark and no
    id: a reader that knows EPSG:4490 or WGS 84 must not mistake them for it. The note names
    the mode and its parameters, never the key (nor its id)."""
    if not shift:
        return {"crs": CRS.from_user_input(STORAGE_CRS).to_json_dict(),
                "note": {"crs": "CGCS2000 (EPSG:4490)", "shifted": False}}
    public = {k: v for k, v in shift.items() if k not in ("key", "key_id")}
    if public.get("mode") == "gcj02":
        name = "GCJ-02"
        remark = ("GCJ-02 (国测局坐标, 'Mars coordinates'): WGS 84 longitude and latitude moved by the "
                  "public GCJ-02 obfuscation, hundreds of metres; not WGS 84 or CGCS2000 positions. "
                  "It overlays Chinese basemaps; anyone can invert it.")
        base = CRS.from_epsg(4326)
    else:
        bound = public.get("max_offset_m")
        name = f"CGCS2000 shifted ({public.get('mode')})"
        remark = (f"CGCS2000 longitude and latitude moved by a keyed {public.get('mode')} shift"
                  + (f" of at most {bound:g} m" if isinstance(bound, (int, float)) else "")
                  + ": not EPSG:4490 positions. The key is not published; the release report says "
                  "what the shift protects and what it does not.")
        base = CRS.from_user_input(STORAGE_CRS)
    projjson = base.to_json_dict()
    projjson.pop("id", None)
    projjson["name"] = name
    projjson["remarks"] = remark
    # Its own datum name too: GDAL matches a CRS to EPSG by its datum, and would file GCJ-02
    # under EPSG:4326 in a GeoPackage.
    ensemble = projjson.pop("datum_ensemble", None)
    datum = projjson.pop("datum", None) or {"type": "GeodeticReferenceFrame", "ellipsoid": ensemble["ellipsoid"]}
    datum.pop("id", None)
    datum["name"] = f"{name} (not a geodetic datum: {datum.get('name', 'WGS 84')} offset)"
    projjson["datum"] = datum
    note = {"crs": name, "shifted": True, "shift": public, "remarks": remark}
    return {"crs": CRS.from_json_dict(projjson).to_json_dict(), "note": note}


def file_label(path: str | os.PathLike) -> dict[str, Any] | None:
    """The coordinate label a GeoParquet file carries (see coordinate_label), for files cut
    from it to carry too; None for a file of plain CGCS2000."""
    metadata = pq.read_schema(path).metadata or {}
    if COORDINATES_KEY.encode() not in metadata:
        return None
    geo = json.loads(metadata.get(b"geo", b"{}"))
    crs = geo.get("columns", {}).get(GEOMETRY_COLUMN, {}).get("crs")
    return {"crs": crs, "note": json.loads(metadata[COORDINATES_KEY.encode()])}


class GeoParquetStreamWriter:
    """Write a GeoParquet file batch by batch, so a release of millions of units never sits
    in memory at once. The "geo" metadata (bbox, geometry types) accumulates over the
    batches and goes into the footer at close. Each row gets its bbox covering column
    (GeoParquet 1.1), and each batch is written in Hilbert order in row groups of row_group_rows.

    The Arrow schema is not stored in the file: pyarrow would then read its own copy of the
    schema metadata, written when the first batch opened the file, instead of the "geo"
    entry added at close. UNIT_SCHEMA's types all round-trip without it.
    """

    def __init__(self, path: str | os.PathLike, *, crs: str = STORAGE_CRS, label: Mapping[str, Any] | None = None,
                 row_group_rows: int = ROW_GROUP_ROWS):
        """``label`` (coordinate_label) names what the coordinates are when they are not
        plain CGCS2000: it replaces the crs in the "geo" metadata and adds its note."""
        self.path = Path(path)
        self._row_group_rows = row_group_rows
        self._crs = CRS.from_user_input(crs)
        self._label = label
        self._temporary = _temporary_path(self.path)
        self._writer: pq.ParquetWriter | None = None
        self._bbox = np.full(4, np.nan)
        self._types: set[str] = set()

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append a batch. Its bbox column is computed here, from exactly the geometry written
        (shifted, lightened, fingerprinted): one the batch brings along is dropped."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        table = without_covering(_in_crs(table, self._crs))
        rows, types = _row_bounds(table.column(GEOMETRY_COLUMN))
        self._types |= types
        with np.errstate(invalid="ignore"):
            bounds = np.concatenate([np.nanmin(rows[:, :2], axis=0, initial=np.inf),
                                     np.nanmax(rows[:, 2:], axis=0, initial=-np.inf)])
        bounds[~np.isfinite(bounds)] = np.nan
        self._bbox = np.concatenate(
            [np.fmin(self._bbox[:2], bounds[:2]), np.fmax(self._bbox[2:], bounds[2:])]
        )
        order = _curve_order(rows)
        table = table.take(pa.array(order)).append_column(BBOX_COLUMN, _bbox_array(rows[order]))
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._temporary, table.schema, compression="zstd", store_schema=False
            )
        self._writer.write_table(table, row_group_size=self._row_group_rows)

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._writer is None:
            raise ValueError(
                f"nothing was written to {self.path}: a GeoParquet file needs at least one batch"
            )
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": sorted(self._types),
            "crs": self._label["crs"] if self._label else self._crs.to_json_dict(),
            "covering": {"bbox": {name: [BBOX_COLUMN, name] for name in BBOX_FIELDS}},
        }
        if not np.isnan(self._bbox).any():
            column["bbox"] = self._bbox.tolist()
        geo = {
            "version": GEOPARQUET_VERSION,
            "primary_column": GEOMETRY_COLUMN,
            "columns": {GEOMETRY_COLUMN: column},
        }
        metadata = {"geo": json.dumps(geo)}
        if self._label:
            metadata[COORDINATES_KEY] = json.dumps(self._label["note"], ensure_ascii=False)
        self._writer.add_key_value_metadata(metadata)
        self._writer.close()
        os.replace(self._temporary, self.path)

    def abort(self) -> None:
        """Drop what was written; nothing appears under the final name."""
        if self._writer is not None:
            self._writer.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> GeoParquetStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_geoparquet(
    table: pa.Table, path: str | os.PathLike, *, crs: str = STORAGE_CRS, label: Mapping[str, Any] | None = None
) -> None:
    with GeoParquetStreamWriter(path, crs=crs, label=label) as writer:
        writer.write(table)


def write_geopackage(
    table: pa.Table, path: str | os.PathLike, *, layer: str = "units", crs: str = STORAGE_CRS,
    label: Mapping[str, Any] | None = None,
) -> None:
    """GDAL stamps a GeoPackage with the time of writing; a pinned stamp makes equal releases
    hash equal. A ``label`` (coordinate_label) becomes the layer's spatial reference system,
    under its own name, instead of EPSG:4490."""
    table = without_covering(_in_crs(table, CRS.from_user_input(crs)))
    # As WKT1: from WKT2, GDAL files a WGS 84-based CRS such as GCJ-02 under EPSG:4326.
    srs = CRS.from_json_dict(label["crs"]).to_wkt("WKT1_GDAL") if label else crs
    with _atomic(path) as temporary, _gdal_config("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z"):
        pyogrio.write_arrow(
            table,
            temporary,
            layer=layer,
            driver="GPKG",
            geometry_name=GEOMETRY_COLUMN,
            geometry_type=_layer_type(table),
            crs=srs,
            layer_options={"GEOMETRY_NAME": GEOMETRY_COLUMN},
        )


def write_geojson(
    table: pa.Table, path: str | os.PathLike, *, layer: str = "units", precision_digits: int = 7,
    label: Mapping[str, Any] | None = None,
) -> None:
    """RFC 7946: GDAL reprojects to WGS 84 and rounds coordinates to precision_digits
    decimal places of a degree (see geojson_digits). The layer becomes the collection's name.
    RFC 7946 has no crs member, so a ``label`` (coordinate_label) goes in a foreign member of
    the collection, COORDINATES_KEY, saying when the coordinates are GCJ-02 or shifted."""
    table = without_covering(table)
    options: dict[str, Any] = {"RFC7946": "YES", "COORDINATE_PRECISION": precision_digits}
    if label:
        options["FOREIGN_MEMBERS_COLLECTION"] = json.dumps({COORDINATES_KEY: label["note"]}, ensure_ascii=False)
    with _atomic(path) as temporary:
        pyogrio.write_arrow(
            table,
            temporary,
            layer=layer,
            driver="GeoJSON",
            geometry_name=GEOMETRY_COLUMN,
            geometry_type=_layer_type(table),
            crs=STORAGE_CRS,
            layer_options=options,
        )


def geojson_digits(precision_m: float) -> int:
    """Decimal places of a degree that keep a release's precision: enough that rounding to
    them moves a vertex by at most a twentieth of precision_m (111,320 m is the longest a
    degree gets, along the equator)."""
    return max(0, math.ceil(math.log10(111_320 * 10 / precision_m)))


def write_all(
    table: pa.Table,
    directory: str | os.PathLike,
    *,
    basename: str,
    crs: str = STORAGE_CRS,
    precision_digits: int = 7,
    layer: str = "units",
) -> dict[str, dict[str, Any]]:
    """Write every format as directory/basename.<suffix>; returns {format: {path, bytes, sha256}}.

    All formats are written under temporary names first and renamed only when all have
    succeeded, so a failure leaves none of the final names behind."""
    directory = Path(directory)
    final = {fmt: directory / f"{basename}{suffix}" for fmt, suffix in SUFFIXES.items()}
    staged = {fmt: _temporary_path(path) for fmt, path in final.items()}
    try:
        write_geoparquet(table, staged["geoparquet"], crs=crs)
        write_geopackage(table, staged["geopackage"], layer=layer, crs=crs)
        write_geojson(table, staged["geojson"], layer=layer, precision_digits=precision_digits)
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    written = {}
    for fmt, path in final.items():
        os.replace(staged[fmt], path)
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        written[fmt] = {"path": str(path), "bytes": path.stat().st_size, "sha256": digest}
    return written


def quadrilaterals(wkb: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Which WKB values are quadrilaterals (see _QUAD_HEADER), and their (m, 5, 2)
    coordinates, read straight from the Arrow buffers. Most rooms are quadrilaterals, and
    this skips building a shapely geometry for each, which costs about a microsecond."""
    wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    header = pc.binary_slice(wkb, 0, len(_QUAD_HEADER))
    is_quad = pc.and_(pc.equal(pc.binary_length(wkb), _QUAD_SIZE), pc.equal(header, pa.scalar(_QUAD_HEADER)))
    is_quad = pc.fill_null(is_quad, False)
    body = pc.binary_slice(wkb, len(_QUAD_HEADER), _QUAD_SIZE)
    if is_quad.false_count:
        body = body.filter(is_quad)
    if not len(body):
        return is_quad.to_numpy(zero_copy_only=False), np.empty((0, 5, 2))
    offset_type = np.int64 if pa.types.is_large_binary(body.type) else np.int32
    first = int(
        np.frombuffer(body.buffers()[1], offset_type, count=1, offset=body.offset * offset_type().itemsize)[0]
    )
    coords = np.frombuffer(body.buffers()[2], "<f8", count=len(body) * 10, offset=first)
    return is_quad.to_numpy(zero_copy_only=False), coords.reshape(-1, 5, 2)


def quadrilateral_wkb(coords: np.ndarray) -> pa.Array:
    """The inverse of quadrilaterals: WKB values for (m, 5, 2) closed rings."""
    values = np.empty((len(coords), _QUAD_SIZE), dtype=np.uint8)
    values[:, : len(_QUAD_HEADER)] = np.frombuffer(_QUAD_HEADER, dtype=np.uint8)
    values[:, len(_QUAD_HEADER) :] = (
        np.ascontiguousarray(coords, dtype="<f8").reshape(len(coords), 10).view(np.uint8)
    )
    offsets = np.arange(len(coords) + 1, dtype=np.int64) * _QUAD_SIZE
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(values)]
    return pa.Array.from_buffers(pa.large_binary(), len(coords), buffers).cast(pa.binary())


def without_covering(table: pa.Table) -> pa.Table:
    """The table without a GeoParquet bbox column: it belongs to the geometry of one file, and
    other formats (and a file of other geometry, such as a recipient's marked copy) leave it out."""
    return table.drop_columns([BBOX_COLUMN]) if BBOX_COLUMN in table.column_names else table


def _bbox_array(rows: np.ndarray) -> pa.StructArray:
    """The bbox covering column of per-row bounds (n, 4); null where a geometry is null or empty."""
    missing = np.isnan(rows).any(axis=1)
    mask = pa.array(missing) if missing.any() else None
    return pa.StructArray.from_arrays(
        [pa.array(rows[:, i]) for i in range(4)], fields=list(BBOX_TYPE), mask=mask
    )


def _curve_order(rows: np.ndarray) -> np.ndarray:
    """Row order along the Hilbert curve of the rows' bbox centres, 16 bits an axis over the
    batch's extent; long units next and rows without bounds last. Row groups cut from it cover
    compact patches (more compact than Z order's, which jumps across the extent)."""
    centres = (rows[:, :2] + rows[:, 2:]) / 2
    present = ~np.isnan(centres).any(axis=1)
    if present.sum() < 2:
        return np.arange(len(rows))
    low, high = centres[present].min(axis=0), centres[present].max(axis=0)
    side = 1 << 16
    scaled = (centres - low) / np.where(high > low, high - low, 1.0) * (side - 1)
    x, y = np.nan_to_num(scaled, nan=side - 1).astype(np.int64).T
    key = np.zeros(len(rows), np.int64)
    s = side >> 1
    while s:  # the classic xy2d, on whole arrays
        rx, ry = (x & s) > 0, (y & s) > 0
        key += s * s * ((3 * rx) ^ ry)
        flip = ~ry & rx
        x, y = np.where(flip, side - 1 - x, x), np.where(flip, side - 1 - y, y)
        x, y = np.where(ry, x, y), np.where(ry, y, x)
        s >>= 1
    # Long units (a road, a pipe) after the rest, in their own row groups: one among the rooms
    # would stretch its row group's extent across the district.
    extent = rows[:, 2:] - rows[:, :2]
    long = (extent > (high - low) / 16).any(axis=1)
    key[long] += side * side
    key[~present] = 2 * side * side
    return np.argsort(key, kind="stable")


def _row_bounds(wkb: pa.ChunkedArray) -> tuple[np.ndarray, set[str]]:
    """Each value's bounds [xmin, ymin, xmax, ymax] (NaN for null or empty), and the
    GeoParquet geometry type names of WKB values."""
    wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    is_quad, quads = quadrilaterals(wkb)
    others = shapely.from_wkb(wkb.filter(pa.array(~is_quad)).to_numpy(zero_copy_only=False))
    rows = np.empty((len(wkb), 4))
    rows[is_quad, :2] = quads.min(axis=1)
    rows[is_quad, 2:] = quads.max(axis=1)
    rows[~is_quad] = shapely.bounds(others)
    present = others[~shapely.is_empty(others)]
    found = np.unique(np.stack([shapely.get_type_id(present), shapely.has_z(present)]), axis=1)
    types = {_TYPE_NAMES[kind] + (" Z" if z else "") for kind, z in found.T}
    return rows, types | ({"Polygon"} if len(quads) else set())


def _in_crs(table: pa.Table, crs: CRS) -> pa.Table:
    """The table with its geometry reprojected from storage to crs."""
    if crs == CRS.from_user_input(STORAGE_CRS):
        return table
    transformer = Transformer.from_crs(STORAGE_CRS, crs, always_xy=True)
    geometries = shapely.from_wkb(table.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False))
    geometries = shapely.transform(
        geometries, lambda c: np.column_stack(transformer.transform(c[:, 0], c[:, 1]))
    )
    field = table.schema.field(GEOMETRY_COLUMN)
    return table.set_column(
        table.schema.get_field_index(GEOMETRY_COLUMN), field, pa.array(shapely.to_wkb(geometries), field.type)
    )


def _layer_type(table: pa.Table) -> str:
    """OGR's layer geometry type: the one type present, else "Unknown" (mixed)."""
    types = {name.removesuffix(" Z") for name in _row_bounds(table.column(GEOMETRY_COLUMN))[1]}
    return types.pop() if len(types) == 1 else "Unknown"


def _temporary_path(path: Path) -> Path:
    """A hidden sibling of path; the same directory makes the final rename atomic, and the
    same suffix keeps GDAL's drivers content."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(6)}.partial{path.suffix}")


@contextlib.contextmanager
def _gdal_config(name: str, value: str) -> Iterator[None]:
    previous = pyogrio.get_gdal_config_option(name)
    pyogrio.set_gdal_config_options({name: value})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({name: previous})


@contextlib.contextmanager
def _atomic(path: str | os.PathLike) -> Iterator[Path]:
    path = Path(path)
    temporary = _temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
