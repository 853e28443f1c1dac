"""Reading a bureau's upload of spatial units (GeoJSON, GeoPackage, GeoParquet, or a zip
holding one of them) into a UNIT_SCHEMA batch in CGCS2000.

Ingest is all-or-nothing: the first bad row raises IngestError and nothing is returned, so a
corpus is never half-loaded. Checks run on whole columns (pyarrow, numpy, shapely); Python
loops run only on the error path, to find and describe the offending row.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from . import gcj02
from .schema import AREA_KINDS, STORAGE_CRS, UNIT_KINDS, UNIT_SCHEMA

REQUIRED_COLUMNS = ("unit_id", "kind", "z_min", "z_max")
MAX_COMPRESSION_RATIO = 100  # text geodata deflates ~5-20:1; far beyond that is a zip bomb
# How far (degrees) coordinates may stray outside their CRS's area of use. Data a little past
# a projected zone's edge is normal (Pudong lies east of the 121.5°E edge of EPSG:4549); data
# in the wrong CRS lands tens of degrees away.
CRS_AREA_MARGIN = 2.0
GCJ02 = "GCJ-02"

_FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GeoPackage", ".parquet": "GeoParquet"}
_ARCHIVES = frozenset({".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".zst", ".7z", ".rar"})
_POLYGONAL = [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON]
_LINEAL = [shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING]
_WORLD = (-180.0, -90.0, 180.0, 90.0)
_TO_UTF8 = "convert the file to UTF-8 (e.g. iconv -f GB18030 -t UTF-8, or re-export it as UTF-8)"


class IngestError(ValueError):
    """Why an upload was refused. `row` is the 1-based feature number in the file and
    `unit_id` that row's id where it could be read (both None for a problem with the file as
    a whole); `field` is the column or aspect at fault, `problem` the bare description."""

    def __init__(
        self, problem: str, *, row: int | None = None, unit_id: str | None = None, field: str | None = None
    ):
        self.problem, self.row, self.unit_id, self.field = problem, row, unit_id, field
        where = "" if row is None else f"row {row}" if unit_id is None else f"row {row} (unit_id {unit_id!r})"
        if field:
            where = f"{where}, {field}" if where else field
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True)
class IngestResult:
    table: pa.Table  # UNIT_SCHEMA columns first, then the file's extra columns
    source_crs: str  # e.g. "EPSG:4549", "OGC:CRS84" or "GCJ-02"
    rows: int


def read_units(
    path: str | Path,
    *,
    declared_crs: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    max_bytes: int = 512 * 2**20,
    max_features: int = 5_000_000,
) -> IngestResult:
    """Reads and validates a whole upload. `declared_crs` overrides a GeoJSON's implied
    WGS84 (RFC 7946 allows no other, yet Chinese producers write CGCS2000 or GCJ-02 into such
    files) and supplies a CRS where the file has none; it may not contradict a CRS the file
    states. `extent` is the bureau's (west, south, east, north) in EPSG:4490 degrees."""
    with _upload(path, max_bytes) as readable:
        return _ingest(readable, declared_crs, extent, max_features)


@contextlib.contextmanager
def _upload(path: str | Path, max_bytes: int) -> Iterator[Path]:
    """The file to read from an upload: checked for size and format, a zip unpacked to its
    one member in a scratch folder that is removed afterwards."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(f"the file is {size} bytes, over the {max_bytes}-byte limit", field="file")
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="miliao-ingest-") as scratch:
            yield _extract_single_member(path, Path(scratch), max_bytes)
        return
    if path.suffix.lower() not in _FORMATS:
        raise IngestError(_unsupported(path.name), field="file")
    yield path


@dataclass(frozen=True)
class GeometryUpload:
    geometries: np.ndarray  # shapely geometries in CGCS2000, empty and missing ones left out
    source_crs: str
    rows: int  # features in the file


def read_geometries(
    path: str | Path,
    *,
    declared_crs: str | None = None,
    max_bytes: int = 512 * 2**20,
    max_features: int = 5_000_000,
) -> GeometryUpload:
    """Only the geometries of an upload, in CGCS2000: for files that carry nothing else one can
    rely on, such as a leaked copy stripped of its attributes. Format, size, zip and CRS are
    checked as in read_units; the columns are not."""
    with _upload(path, max_bytes) as readable:
        return _read_geometries(readable, declared_crs, max_features)


def _read_geometries(path: Path, declared_crs, max_features: int) -> GeometryUpload:
    reader = _read_geoparquet if path.suffix.lower() == ".parquet" else _read_ogr
    source = reader(path, max_features)
    crs = _resolve_crs(declared_crs, source)
    table = source.table
    if source.geometry not in table.column_names:
        raise IngestError(f"geometry column {source.geometry!r} is missing", field="geometry")
    column = table.column(source.geometry)
    geometries = shapely.from_wkb(column.to_numpy(zero_copy_only=False), on_invalid="ignore")
    readable = column.is_valid().to_numpy(zero_copy_only=False)
    _raise_at(table, readable & shapely.is_missing(geometries), "geometry", lambda i: "unreadable WKB geometry")
    kept = readable & ~shapely.is_empty(geometries)
    if not kept.any():
        raise IngestError("the file holds no geometries", field="geometry")
    table, geometries = table.filter(pa.array(kept)), geometries[kept]
    return GeometryUpload(_to_storage(table, geometries, crs, None), crs.name, int(len(kept)))


def _unsupported(name: str) -> str:
    return (
        f"unsupported file {name!r}: upload GeoJSON (.geojson, .json), GeoPackage (.gpkg), "
        "GeoParquet (.parquet) or a .zip holding one of them"
    )


def _extract_single_member(archive: Path, into: Path, max_bytes: int) -> Path:
    """Judges the archive by its central directory before inflating a byte. zipfile stops
    reading a member at its declared size (and fails on a CRC mismatch), so a header that
    lies about the size cannot make the extraction larger than what was checked."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members[:5])
                raise IngestError(
                    f"a zip must hold exactly one data file, this one holds {len(members)} ({names})",
                    field="archive",
                )
            member = members[0]
            suffix = PurePosixPath(member.filename).suffix.lower()
            if suffix in _ARCHIVES:
                raise IngestError(
                    f"nested archive {member.filename!r}: zip the data file itself", field="archive"
                )
            if suffix not in _FORMATS:
                raise IngestError(_unsupported(member.filename), field="archive")
            if member.file_size > max_bytes:
                raise IngestError(
                    f"{member.filename!r} declares {member.file_size} bytes uncompressed, "
                    f"over the {max_bytes}-byte limit",
                    field="archive",
                )
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > MAX_COMPRESSION_RATIO:
                raise IngestError(
                    f"{member.filename!r} compresses {ratio:.0f}:1, over the "
                    f"{MAX_COMPRESSION_RATIO}:1 limit (a zip bomb?)",
                    field="archive",
                )
            target = into / f"upload{suffix}"  # never the member's own path: no traversal
            with zf.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as error:
        raise IngestError(f"not a readable zip archive ({error})", field="archive") from None
    return target


class _Source(NamedTuple):
    table: pa.Table
    geometry: str  # the WKB column's name
    crs: CRS | None  # the CRS the file states
    default_crs: CRS | None  # the CRS its format implies when it states none


def _ingest(path: Path, declared_crs, extent, max_features: int) -> IngestResult:
    reader = _read_geoparquet if path.suffix.lower() == ".parquet" else _read_ogr
    source = reader(path, max_features)
    crs = _resolve_crs(declared_crs, source)
    table = _validate(source, crs, extent)
    return IngestResult(table=table, source_crs=crs.name, rows=table.num_rows)


def _read_ogr(path: Path, max_features: int) -> _Source:
    """GeoJSON and GeoPackage through GDAL, straight into Arrow (geometry as WKB)."""
    fmt = _FORMATS[path.suffix.lower()]
    try:
        layers = [name for name, geometry_type in pyogrio.list_layers(path) if geometry_type is not None]
        if len(layers) != 1:
            raise IngestError(
                f"the file must hold exactly one layer with geometry, this one holds {len(layers)} "
                f"({', '.join(layers)}); export the units layer alone",
                field="layer",
            )
        meta, table = pyogrio.read_arrow(path, layer=layers[0], max_features=max_features + 1)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise IngestError(f"not a readable {fmt} file ({error})", field="file") from None
    except UnicodeDecodeError:
        raise IngestError(f"column names are not valid UTF-8; {_TO_UTF8}", field="columns") from None
    _check_count(table.num_rows, max_features)
    crs = _parse_crs(meta["crs"], "the file's CRS") if meta["crs"] else None
    geometry = meta["geometry_name"] or "wkb_geometry"
    if fmt == "GeoJSON" and crs is not None and crs.equals("EPSG:4326"):
        # GDAL reports WGS84 for a GeoJSON without a crs member, so this is only the default.
        return _Source(table, geometry, None, crs)
    return _Source(table, geometry, crs, None)


def _read_geoparquet(path: Path, max_features: int) -> _Source:
    """GeoParquet 1.x with WKB geometry. Per the spec a missing "crs" means OGC:CRS84 and an
    explicit null means the CRS is unknown."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise IngestError(f"not a readable GeoParquet file ({error})", field="file") from None
    _check_count(file.metadata.num_rows, max_features)
    try:
        geo = json.loads((file.schema_arrow.metadata or {})[b"geo"])
        geometry = geo["primary_column"]
        column = geo["columns"][geometry]
    except (KeyError, TypeError, ValueError):
        raise IngestError(
            "a Parquet file without valid GeoParquet 'geo' metadata (primary_column, columns)",
            field="geometry",
        ) from None
    if column.get("encoding") != "WKB":
        raise IngestError(
            f"geometry column {geometry!r} is encoded as {column.get('encoding')!r}; only WKB is supported",
            field="geometry",
        )
    if "crs" not in column:
        return _Source(file.read(), geometry, None, CRS("OGC:CRS84"))
    crs = None if column["crs"] is None else _parse_crs(column["crs"], "the file's CRS")
    return _Source(file.read(), geometry, crs, None)


def _check_count(rows: int, max_features: int) -> None:
    if rows > max_features:
        raise IngestError(f"the file holds more than {max_features} features", field="file")
    if rows == 0:
        raise IngestError("the file holds no features", field="file")


def _parse_crs(value, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError as error:
        raise IngestError(f"{what} is not a CRS pyproj understands ({error})", field="crs") from None


# --- CRS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceCrs:
    name: str
    area: tuple[float, float, float, float]  # where its coordinates may plausibly land, in 4490
    to_storage: Callable[[np.ndarray], np.ndarray] | None  # (n, 2) -> (n, 2); None: already 4490


def _resolve_crs(declared: str | None, source: _Source) -> _SourceCrs:
    stated = source.crs
    if declared is not None and declared.replace("-", "").upper() == "GCJ02":
        if stated is not None and not stated.is_geographic:
            raise _contradiction(GCJ02, stated)
        return _SourceCrs(GCJ02, _widen(gcj02.AREA), _gcj02_to_storage)
    if declared is None:
        crs = stated if stated is not None else source.default_crs
        if crs is None:
            raise IngestError(
                "the file states no CRS; pass declared_crs (e.g. 'EPSG:4549' for CGCS2000 "
                "Gauss-Krüger 120°E)",
                field="crs",
            )
    else:
        crs = _parse_crs(declared, f"declared_crs {declared!r}")
        if stated is not None and not stated.equals(crs, ignore_axis_order=True):
            raise _contradiction(declared, stated)
    area = _widen(crs.area_of_use.bounds) if crs.area_of_use else _WORLD
    if crs.equals(STORAGE_CRS, ignore_axis_order=True):
        return _SourceCrs(_crs_name(crs), area, None)
    transformer = Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)

    def to_storage(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    return _SourceCrs(_crs_name(crs), area, to_storage)


def _contradiction(declared: str, stated: CRS) -> IngestError:
    return IngestError(
        f"declared CRS {declared} contradicts the file's own CRS {_crs_name(stated)}", field="crs"
    )


def _crs_name(crs: CRS) -> str:
    authority = crs.to_authority()
    return ":".join(authority) if authority else crs.name


def _widen(bounds) -> tuple[float, float, float, float]:
    west, south, east, north = bounds
    m = CRS_AREA_MARGIN
    return (max(west - m, -180.0), max(south - m, -90.0), min(east + m, 180.0), min(north + m, 90.0))


_WGS84_TO_STORAGE = Transformer.from_crs("EPSG:4326", STORAGE_CRS, always_xy=True)


def _gcj02_to_storage(xy: np.ndarray) -> np.ndarray:
    return np.column_stack(_WGS84_TO_STORAGE.transform(*gcj02.to_wgs84(xy[:, 0], xy[:, 1])))


# --- rows ----------------------------------------------------------------------------------


def _validate(source: _Source, crs: _SourceCrs, extent) -> pa.Table:
    """Checks every row and builds the UNIT_SCHEMA table; the first failure raises."""
    table = source.table
    missing = [name for name in (*REQUIRED_COLUMNS, source.geometry) if name not in table.column_names]
    if missing:
        raise IngestError(f"required column {missing[0]!r} is missing", field=missing[0])
    _check_utf8(table)

    ids = _cast(table, "unit_id", pa.string())
    table = table.set_column(table.column_names.index("unit_id"), "unit_id", ids)
    _raise_at(table, pc.equal(ids, "").fill_null(True), "unit_id", lambda i: "missing")

    kinds = _cast(table, "kind", pa.string())
    known = pc.is_in(kinds, value_set=pa.array(UNIT_KINDS)).fill_null(False)
    _raise_at(
        table, pc.invert(known), "kind",
        lambda i: f"unknown kind {kinds[i].as_py()!r}; expected one of {', '.join(UNIT_KINDS)}",
    )

    z_min, z_max = _heights(table, "z_min"), _heights(table, "z_max")
    _raise_at(table, z_min > z_max, "z_min", lambda i: f"z_min {z_min[i]:g} is above z_max {z_max[i]:g}")

    geometries = _geometries(table, source.geometry, kinds)
    geometries = _to_storage(table, geometries, crs, extent)

    if pc.count_distinct(ids).as_py() < len(ids):
        _raise_duplicate(table, ids)

    columns = {
        "unit_id": ids,
        "kind": kinds,
        "geometry": pa.array(shapely.to_wkb(geometries, output_dimension=2), pa.binary()),
        "z_min": pa.array(z_min),
        "z_max": pa.array(z_max),
    }
    fields = list(UNIT_SCHEMA)
    for field in fields:
        if field.name in columns:
            continue
        if field.name in table.column_names and field.name != "grid_code":  # corpora.grid fills it
            columns[field.name] = _cast(table, field.name, field.type)
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    for name in table.column_names:
        if name not in columns and name != source.geometry:
            columns[name] = table.column(name)
            fields.append(pa.field(name, table.column(name).type))
    return pa.Table.from_arrays([columns[f.name] for f in fields], schema=pa.schema(fields))


def _first(mask) -> int | None:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.to_numpy()
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _raise_at(table: pa.Table, mask, field: str, problem: Callable[[int], str]) -> None:
    """Raises for the first row where `mask` holds; `problem` describes that row."""
    if (i := _first(mask)) is not None:
        raise _row_error(table, i, field, problem(i))


def _row_error(table: pa.Table, i: int, field: str, problem: str) -> IngestError:
    try:
        unit_id = table.column("unit_id")[i].as_py()
    except (KeyError, UnicodeDecodeError):
        unit_id = None
    return IngestError(problem, row=i + 1, unit_id=None if unit_id is None else str(unit_id), field=field)


def _check_utf8(table: pa.Table) -> None:
    """Arrow does not check text that GDAL or Parquet hand over, so a GBK file arrives with
    invalid strings; validating whole columns is cheap, locating the row only runs on failure."""
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                raw = column.cast(pa.large_binary()).to_pylist()
                i = next(i for i, value in enumerate(raw) if value is not None and _decode_error(value))
                raise _row_error(table, i, name, _utf8_problem(raw[i])) from None


def _decode_error(value: bytes) -> UnicodeDecodeError | None:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as error:
        return error
    return None


def _utf8_problem(value: bytes) -> str:
    """Names the bad bytes and, since Chinese files that are not UTF-8 are nearly always
    GBK/GB18030, shows how the value reads in that encoding."""
    start = _decode_error(value).start
    try:
        reading = f"; as GB18030/GBK it reads {value.decode('gb18030')!r}"
    except UnicodeDecodeError:
        reading = ""
    return f"not valid UTF-8 (bytes {value[start:start + 4]!r} at offset {start}{reading}); {_TO_UTF8}"


def _cast(table: pa.Table, name: str, target: pa.DataType) -> pa.ChunkedArray:
    """The column in its schema type. Casts are safe (no silent truncation or overflow); when
    one fails, the first value that does not convert is found and named."""
    column = table.column(name)
    if column.type == target:
        return column
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.string())  # Arrow would turn true into 1.0: it is not a number
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        i = next(i for i, value in enumerate(column) if value.is_valid and not _casts(value, target))
        value = column[i].as_py()
        if pa.types.is_string(target):
            problem = _utf8_problem(value)
        elif pa.types.is_floating(target):
            problem = f"not a number: {value!r}"
        else:
            problem = f"not a whole number that fits {target}: {value!r}"
        raise _row_error(table, i, name, problem) from None


def _casts(value: pa.Scalar, target: pa.DataType) -> bool:
    try:
        value.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _heights(table: pa.Table, name: str) -> np.ndarray:
    column = _cast(table, name, pa.float64())
    values = column.to_numpy()  # nulls become NaN
    _raise_at(
        table, ~np.isfinite(values), name,
        lambda i: "missing" if column[i].as_py() is None else f"not a finite number: {values[i]}",
    )
    return values


def _geometries(table: pa.Table, name: str, kinds: pa.ChunkedArray) -> np.ndarray:
    """Parses the WKB and checks each geometry is present, non-empty, of a type that fits its
    unit's kind, and valid (GEOS's reason, e.g. a bow-tie's self-intersection, is quoted)."""
    column = table.column(name)
    geometries = shapely.from_wkb(column.to_numpy(zero_copy_only=False), on_invalid="ignore")
    present = column.is_valid().to_numpy(zero_copy_only=False)
    _raise_at(table, ~present, "geometry", lambda i: "missing geometry")
    _raise_at(table, shapely.is_missing(geometries), "geometry", lambda i: "unreadable WKB geometry")
    _raise_at(table, shapely.is_empty(geometries), "geometry", lambda i: "empty geometry")

    types = shapely.get_type_id(geometries)
    polygonal = pc.is_in(kinds, value_set=pa.array(sorted(AREA_KINDS))).to_numpy(zero_copy_only=False)
    fits = np.where(polygonal, np.isin(types, _POLYGONAL), np.isin(types, _LINEAL))
    _raise_at(
        table, ~fits, "geometry",
        lambda i: (
            f"a {kinds[i].as_py()} needs "
            f"{'Polygon or MultiPolygon' if polygonal[i] else 'LineString or MultiLineString'} "
            f"geometry, not {geometries[i].geom_type}"
        ),
    )
    _raise_at(
        table, ~shapely.is_valid(geometries), "geometry",
        lambda i: f"invalid geometry ({shapely.is_valid_reason(geometries[i])})",
    )
    return geometries


def _to_storage(table: pa.Table, geometries: np.ndarray, crs: _SourceCrs, extent) -> np.ndarray:
    """Transforms all vertices at once, refusing coordinates that cannot be in the source CRS
    (they land outside its area of use, e.g. metres in a file that claims degrees) and ones
    outside the bureau's extent."""
    xy, owner = shapely.get_coordinates(geometries, return_index=True)
    lonlat = xy if crs.to_storage is None else crs.to_storage(xy)
    lon, lat = lonlat[:, 0], lonlat[:, 1]

    def first_outside(bounds) -> int | None:
        west, south, east, north = bounds
        return _first(~((lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)))  # NaN fails too

    if (k := first_outside(crs.area)) is not None:
        raise _row_error(
            table, int(owner[k]), "geometry",
            f"coordinates ({xy[k, 0]:.10g}, {xy[k, 1]:.10g}) cannot be in {crs.name}: they fall outside "
            f"its area of use (lon {crs.area[0]:g}..{crs.area[2]:g}, lat {crs.area[1]:g}..{crs.area[3]:g}); "
            "pass declared_crs with the file's real CRS",
        )
    if extent is not None and (k := first_outside(extent)) is not None:
        raise _row_error(
            table, int(owner[k]), "geometry",
            f"vertex ({lon[k]:.7f}, {lat[k]:.7f}) lies outside the bureau's extent {tuple(extent)}",
        )
    return geometries if crs.to_storage is None else shapely.set_coordinates(geometries, lonlat)


def _raise_duplicate(table: pa.Table, ids: pa.ChunkedArray) -> None:
    first_row: dict[str, int] = {}
    for i, unit_id in enumerate(ids.to_pylist()):
        if (first := first_row.setdefault(unit_id, i)) != i:
            raise _row_error(table, i, "unit_id", f"duplicate unit_id, first used in row {first + 1}")
