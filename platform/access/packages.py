"""A recipient's package: the release's GeoParquet read batch by batch, cut to the licensed
area and fields, each unit moved by the recipient's fingerprint, and written as GeoJSON text
(yielded chunk by chunk) or GeoParquet (written to a file batch by batch).

The fingerprint moves whole mark groups (access.fingerprint), which span batches, so a
fingerprinted package first reads the release's ids and geometry once, batch by batch, to find
each unit's group (``release_groups``: kept per process for the release file, which never
changes once written); it holds one small integer per unit and one entry per distinct (building,
vertex), never the geometries. The package itself is then made batch by batch, so memory
beyond that index is bounded by the batch size, whatever the release's size. Plain Python
(pyarrow, shapely, numpy): no Django.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from releases import jsonable
from releases.columns import GRID_CODE, grid_codes
from access.fingerprint import MarkGroups, embed
from releases.lightweight import ALWAYS_KEPT
from releases.writers import BBOX_COLUMN, COORDINATES_KEY, GEOMETRY_COLUMN, GeoParquetStreamWriter, file_label

FORMATS = ("geojson", "geoparquet")
SUFFIXES = {"geojson": ".geojson", "geoparquet": ".parquet"}
CONTENT_TYPES = {"geojson": "application/geo+json", "geoparquet": "application/vnd.apache.parquet"}
BATCH_ROWS = 20_000
UNIT_KEY = "unit_id"  # the release's (pseudonymous) unit id
BUILDING_KEY = "building_id"  # the release's building pseudonym: a building's units move together
GROUP_ROWS = 50_000  # rows per batch while finding the mark groups


@dataclass(frozen=True)
class PackageSpec:
    """What one package holds and how it is marked. ``fingerprint_key`` None: an open
    release, handed out unmarked; otherwise the recipient's key, with the release's
    fingerprint ``code_key`` (access.fingerprint.code_key) and precision. ``fields`` None:
    every column of the release."""

    source: Path
    fields: Sequence[str] | None = None
    area: Sequence[float] | None = None  # (west, south, east, north), CGCS2000 degrees
    fingerprint_key: bytes | None = None
    precision_m: float | None = None
    code_key: bytes | None = None
    batch_rows: int = BATCH_ROWS

    def __post_init__(self):
        if self.fingerprint_key is not None and not self.precision_m:
            raise ValueError("a fingerprinted package needs the release precision (precision_m)")
        if self.fingerprint_key is not None and not self.code_key:
            raise ValueError("a fingerprinted package needs the release's fingerprint code key (code_key)")


def release_columns(source: Path) -> list[str]:
    """The release's columns, from the file's footer alone. Not its bbox covering column: a
    package's file computes its own from the geometry it holds (a marked copy's bbox differs)."""
    return [name for name in pq.read_schema(source).names if name != BBOX_COLUMN]


def release_bbox(source: Path) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the release, from its GeoParquet "geo" footer."""
    geo = json.loads((pq.read_schema(source).metadata or {}).get(b"geo", b"{}"))
    bbox = geo.get("columns", {}).get(GEOMETRY_COLUMN, {}).get("bbox")
    return tuple(bbox) if bbox else (-180.0, -90.0, 180.0, 90.0)


def requestable_fields(source: Path) -> list[str]:
    """The attribute columns an application may ask for: all but the ones every package has."""
    return [name for name in release_columns(source) if name not in ALWAYS_KEPT]


def release_groups(source: Path, precision_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(group index per row of the release file, the groups' keys): the fingerprint's mark
    groups, found from the release's ids, building pseudonyms and geometry."""
    stat = os.stat(source)
    return _release_groups(str(source), stat.st_size, stat.st_mtime_ns, float(precision_m))


@lru_cache(maxsize=8)
def _release_groups(source: str, size: int, mtime_ns: int, precision_m: float) -> tuple[np.ndarray, ...]:
    names = release_columns(Path(source))
    columns = [name for name in (UNIT_KEY, BUILDING_KEY, GEOMETRY_COLUMN) if name in names]
    groups = MarkGroups(precision_m=precision_m)
    for batch in pq.ParquetFile(source).iter_batches(batch_size=GROUP_ROWS, columns=columns):
        groups.add(
            shapely.from_wkb(batch.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False)),
            batch.column(UNIT_KEY).to_numpy(zero_copy_only=False),
            batch.column(BUILDING_KEY).to_numpy(zero_copy_only=False) if BUILDING_KEY in names else None,
        )
    index, keys = groups.finish()
    return index.astype(np.int32 if len(keys) < 2**31 else np.int64), keys


def batches(spec: PackageSpec) -> Iterator[pa.Table]:
    """The package, one bounded batch at a time."""
    names = release_columns(spec.source)
    if spec.fields is None:
        columns = names
    else:
        wanted = set(ALWAYS_KEPT) | set(spec.fields)
        columns = [name for name in names if name in wanted]
    area = shapely.box(*spec.area) if spec.area is not None else None
    if spec.fingerprint_key is not None:
        group_index, group_keys = release_groups(spec.source, spec.precision_m)
    reader = pq.ParquetFile(spec.source)
    start = 0
    for batch in reader.iter_batches(batch_size=spec.batch_rows, columns=columns):
        table = pa.Table.from_batches([batch])
        rows = np.arange(start, start + table.num_rows)
        start += table.num_rows
        geoms = shapely.from_wkb(table.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False))
        if area is not None:
            inside = shapely.intersects(geoms, area)
            if not inside.all():
                table, geoms, rows = table.filter(pa.array(inside)), geoms[inside], rows[inside]
        if table.num_rows == 0:
            continue
        if spec.fingerprint_key is not None:
            geoms = embed(
                geoms,
                group_keys[group_index[rows]],
                spec.fingerprint_key,
                code_key=spec.code_key,
                precision_m=spec.precision_m,
            )
            index = table.schema.get_field_index(GEOMETRY_COLUMN)
            table = table.set_column(
                index, table.schema.field(index), pa.array(shapely.to_wkb(geoms), pa.binary())
            )
            if GRID_CODE in table.column_names:  # of the recipient's geometry: the base's would show the mark
                codes = grid_codes(shapely.bounds(geoms), table.column("z_min").to_numpy(zero_copy_only=False),
                                   table.column("z_max").to_numpy(zero_copy_only=False), precision_m=spec.precision_m)
                index = table.schema.get_field_index(GRID_CODE)
                table = table.set_column(index, table.schema.field(index), codes)
        yield table


def geojson_chunks(spec: PackageSpec, *, name: str) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection, one chunk per batch. Coordinates are written in full
    (the release grid is finer than GeoJSON's customary 7 decimals); CGCS2000 and WGS 84
    agree to centimetres, well inside any release's precision."""
    label = file_label(spec.source)  # GCJ-02 or shifted: said as in the release's own files
    note = b"," + json.dumps(COORDINATES_KEY).encode() + b":" + json.dumps(label["note"], ensure_ascii=False).encode() if label else b""
    yield b'{"type":"FeatureCollection","name":' + json.dumps(name).encode() + note + b',"features":['
    first = True
    for table in batches(spec):
        geometry = shapely.to_geojson(
            shapely.from_wkb(table.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False))
        )
        properties = table.drop_columns([GEOMETRY_COLUMN]).to_pylist()
        features = ",".join(
            '{"type":"Feature","properties":'
            + json.dumps(p, ensure_ascii=False, default=jsonable.as_text)
            + ',"geometry":'
            + g
            + "}"
            for p, g in zip(properties, geometry.tolist())
        )
        yield (features if first else "," + features).encode()
        first = False
    yield b"]}\n"


def write_geoparquet(spec: PackageSpec, path: Path) -> Path:
    """The package as GeoParquet at ``path``, written batch by batch."""
    writer = GeoParquetStreamWriter(path, label=file_label(spec.source))
    try:
        wrote = False
        for table in batches(spec):
            writer.write(table)
            wrote = True
        if not wrote:
            raise ValueError("the licensed area holds no units of this release")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return path
