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
from collections.abc import Iterator
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


class GeoParquetStreamWriter:
    """Write a GeoParquet file batch by batch, so a release of millions of units never sits
    in memory at once. The "geo" metadata (bbox, geometry types) accumulates over the
    batches and goes into the footer at close.

    The Arrow schema is not stored in the file: pyarrow would then read its own copy of the
    schema metadata, written when the first batch opened the file, instead of the "geo"
    entry added at close. UNIT_SCHEMA's types all round-trip without it.
    """

    def __init__(self, path: str | os.PathLike, *, crs: str = STORAGE_CRS):
        self.path = Path(path)
        self._crs = CRS.from_user_input(crs)
        self._temporary = _temporary_path(self.path)
        self._writer: pq.ParquetWriter | None = None
        self._bbox = np.full(4, np.nan)
        self._types: set[str] = set()

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        table = _in_crs(table, self._crs)
        bounds, types = _summary(table.column(GEOMETRY_COLUMN))
        self._types |= types
        self._bbox = np.concatenate(
            [np.fmin(self._bbox[:2], bounds[:2]), np.fmax(self._bbox[2:], bounds[2:])]
        )
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._temporary, table.schema, compression="zstd", store_schema=False
            )
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._writer is None:
            raise ValueError(
                f"nothing was written to {self.path}: a GeoParquet file needs at least one batch"
            )
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": sorted(self._types),
            "crs": self._crs.to_json_dict(),
        }
        if not np.isnan(self._bbox).any():
            column["bbox"] = self._bbox.tolist()
        geo = {
            "version": GEOPARQUET_VERSION,
            "primary_column": GEOMETRY_COLUMN,
            "columns": {GEOMETRY_COLUMN: column},
        }
        self._writer.add_key_value_metadata({"geo": json.dumps(geo)})
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


def write_geoparquet(table: pa.Table, path: str | os.PathLike, *, crs: str = STORAGE_CRS) -> None:
    with GeoParquetStreamWriter(path, crs=crs) as writer:
        writer.write(table)


def write_geopackage(
    table: pa.Table, path: str | os.PathLike, *, layer: str = "units", crs: str = STORAGE_CRS
) -> None:
    """GDAL stamps a GeoPackage with the time of writing; a pinned stamp makes equal releases
    hash equal."""
    table = _in_crs(table, CRS.from_user_input(crs))
    with _atomic(path) as temporary, _gdal_config("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z"):
        pyogrio.write_arrow(
            table,
            temporary,
            layer=layer,
            driver="GPKG",
            geometry_name=GEOMETRY_COLUMN,
            geometry_type=_layer_type(table),
            crs=crs,
            layer_options={"GEOMETRY_NAME": GEOMETRY_COLUMN},
        )


def write_geojson(
    table: pa.Table, path: str | os.PathLike, *, layer: str = "units", precision_digits: int = 7
) -> None:
    """RFC 7946: GDAL reprojects to WGS 84 and rounds coordinates to precision_digits
    decimal places of a degree (see geojson_digits). The layer becomes the collection's name."""
    with _atomic(path) as temporary:
        pyogrio.write_arrow(
            table,
            temporary,
            layer=layer,
            driver="GeoJSON",
            geometry_name=GEOMETRY_COLUMN,
            geometry_type=_layer_type(table),
            crs=STORAGE_CRS,
            layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": precision_digits},
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


def _summary(wkb: pa.ChunkedArray) -> tuple[np.ndarray, set[str]]:
    """The bounding box [xmin, ymin, xmax, ymax] (NaN when there is nothing) and the
    GeoParquet geometry type names of WKB values."""
    is_quad, quads = quadrilaterals(wkb)
    others = shapely.from_wkb(wkb.filter(pa.array(~is_quad)).to_numpy(zero_copy_only=False))
    bounds = np.full(4, np.nan)
    if len(quads):
        bounds = np.concatenate([quads.min(axis=(0, 1)), quads.max(axis=(0, 1))])
    if len(others):
        found = shapely.total_bounds(others)
        bounds = np.concatenate([np.fmin(bounds[:2], found[:2]), np.fmax(bounds[2:], found[2:])])
    present = others[~shapely.is_empty(others)]
    found = np.unique(np.stack([shapely.get_type_id(present), shapely.has_z(present)]), axis=1)
    types = {_TYPE_NAMES[kind] + (" Z" if z else "") for kind, z in found.T}
    return bounds, types | ({"Polygon"} if len(quads) else set())


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
    types = {name.removesuffix(" Z") for name in _summary(table.column(GEOMETRY_COLUMN))[1]}
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
