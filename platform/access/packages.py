"""A recipient's package: the release's GeoParquet read batch by batch, cut to the licensed
area and fields, each unit moved by the recipient's fingerprint, and written as GeoJSON text
(yielded chunk by chunk) or GeoParquet (written to a file batch by batch).

Memory is bounded by the batch size, whatever the release's size. Plain Python (pyarrow,
shapely, numpy): no Django.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from releases.columns import GRID_CODE, grid_codes
from releases.fingerprint import embed
from releases.lightweight import ALWAYS_KEPT
from releases.writers import COORDINATES_KEY, GEOMETRY_COLUMN, GeoParquetStreamWriter, file_label

FORMATS = ("geojson", "geoparquet")
SUFFIXES = {"geojson": ".geojson", "geoparquet": ".parquet"}
CONTENT_TYPES = {"geojson": "application/geo+json", "geoparquet": "application/vnd.apache.parquet"}
BATCH_ROWS = 20_000
UNIT_KEY = "unit_id"  # the release's (pseudonymous) unit id: the fingerprint's per-unit key


@dataclass(frozen=True)
class PackageSpec:
    """What one package holds and how it is marked. ``fingerprint_key`` None: an open
    release, handed out unmarked. ``fields`` None: every column of the release."""

    source: Path
    fields: Sequence[str] | None = None
    area: Sequence[float] | None = None  # (west, south, east, north), CGCS2000 degrees
    fingerprint_key: bytes | None = None
    precision_m: float | None = None
    batch_rows: int = BATCH_ROWS

    def __post_init__(self):
        if self.fingerprint_key is not None and not self.precision_m:
            raise ValueError("a fingerprinted package needs the release precision (precision_m)")


def release_columns(source: Path) -> list[str]:
    """The release's columns, from the file's footer alone."""
    return pq.read_schema(source).names


def release_bbox(source: Path) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the release, from its GeoParquet "geo" footer."""
    geo = json.loads((pq.read_schema(source).metadata or {}).get(b"geo", b"{}"))
    bbox = geo.get("columns", {}).get(GEOMETRY_COLUMN, {}).get("bbox")
    return tuple(bbox) if bbox else (-180.0, -90.0, 180.0, 90.0)


def requestable_fields(source: Path) -> list[str]:
    """The attribute columns an application may ask for: all but the ones every package has."""
    return [name for name in release_columns(source) if name not in ALWAYS_KEPT]


def batches(spec: PackageSpec) -> Iterator[pa.Table]:
    """The package, one bounded batch at a time."""
    names = release_columns(spec.source)
    if spec.fields is None:
        columns = names
    else:
        wanted = set(ALWAYS_KEPT) | set(spec.fields)
        columns = [name for name in names if name in wanted]
    area = shapely.box(*spec.area) if spec.area is not None else None
    reader = pq.ParquetFile(spec.source)
    for batch in reader.iter_batches(batch_size=spec.batch_rows, columns=columns):
        table = pa.Table.from_batches([batch])
        geoms = shapely.from_wkb(table.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False))
        if area is not None:
            inside = shapely.intersects(geoms, area)
            if not inside.all():
                table, geoms = table.filter(pa.array(inside)), geoms[inside]
        if table.num_rows == 0:
            continue
        if spec.fingerprint_key is not None:
            keys = table.column(UNIT_KEY).to_numpy(zero_copy_only=False).astype(str)
            geoms = embed(geoms, keys, spec.fingerprint_key, precision_m=spec.precision_m)
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
            + json.dumps(p, ensure_ascii=False, default=_plain)
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


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
