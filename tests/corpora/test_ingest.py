"""Ingest of uploaded units: every format and CRS path on small files written here, and one
test per way an upload is refused (atomically, naming the row and the problem)."""
from __future__ import annotations

import json
import sqlite3
import tempfile
import zipfile

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import Transformer

from corpora.ingest import IngestError, read_units
from corpora.schema import UNIT_SCHEMA

pytestmark = pytest.mark.release

LON, LAT = 121.47, 31.23  # central Shanghai
SHANGHAI = (120.8, 30.6, 122.2, 31.9)
BOW_TIE = [[[LON, LAT], [LON + 1e-4, LAT + 1e-4], [LON + 1e-4, LAT], [LON, LAT + 1e-4], [LON, LAT]]]


def square(lon=LON, lat=LAT, d=1e-4):
    return [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]


def feature(unit_id, kind="room", geometry=None, z_min=0.0, z_max=3.0, **properties):
    geometry = geometry if geometry is not None else {"type": "Polygon", "coordinates": square()}
    properties = {"unit_id": unit_id, "kind": kind, "z_min": z_min, "z_max": z_max, **properties}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def write_geojson(path, features, crs=None, encoding="utf-8"):
    collection = {"type": "FeatureCollection", "features": features}
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_bytes(json.dumps(collection, ensure_ascii=False).encode(encoding))
    return path


def units_frame(geometries, crs, **columns):
    n = len(geometries)
    data = {
        "unit_id": [f"R-{i + 1}" for i in range(n)],
        "kind": ["room"] * n,
        "z_min": [0.0] * n,
        "z_max": [3.0] * n,
        **columns,
    }
    return gpd.GeoDataFrame(data, geometry=list(geometries), crs=crs)


def refused(path, **kwargs) -> IngestError:
    with pytest.raises(IngestError) as caught:
        read_units(path, **kwargs)
    return caught.value


# --- happy paths ---------------------------------------------------------------------------


def test_geojson_becomes_a_unit_schema_table(tmp_path):
    road = {"type": "LineString", "coordinates": [[LON, LAT, 5.0], [LON + 0.001, LAT, 5.0]]}
    path = write_geojson(
        tmp_path / "units.geojson",
        [
            feature("R-1", floor=3, notes="浦东新区 3 楼", survey_team="甲"),
            feature("P-1", "pipe", road, z_min=-2.5, z_max=-1.0, diameter_mm=300),
        ],
    )
    result = read_units(path, extent=SHANGHAI)

    assert result.rows == 2 and result.source_crs == "EPSG:4326"
    table = result.table
    assert table.schema.names[: len(UNIT_SCHEMA)] == UNIT_SCHEMA.names
    assert table.schema.names[len(UNIT_SCHEMA):] == ["survey_team"]  # extra columns follow
    for field in UNIT_SCHEMA:
        assert table.schema.field(field.name).type == field.type
    assert table["unit_id"].to_pylist() == ["R-1", "P-1"]
    assert table["floor"].to_pylist() == [3, None]
    assert table["notes"].to_pylist() == ["浦东新区 3 楼", None]
    assert table["owner_name"].null_count == 2 and table["grid_code"].null_count == 2
    assert table["z_min"].to_pylist() == [0.0, -2.5]
    room, pipe = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    assert room.equals_exact(shapely.Polygon(square()[0]), tolerance=1e-9)
    assert not pipe.has_z  # heights live in z_min/z_max; stored geometry is 2D


def test_geopackage_in_gauss_kruger_is_transformed_to_cgcs2000(tmp_path):
    lonlat = [shapely.Polygon(square(LON + i * 0.01, LAT)[0]) for i in range(3)]
    to_gk = Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)
    projected = [shapely.transform(g, lambda xy: np.column_stack(to_gk.transform(*xy.T))) for g in lonlat]
    on_meridian = shapely.Polygon([(500000, 3_450_000), (500010, 3_450_000), (500010, 3_450_010)])
    units_frame([*projected, on_meridian], "EPSG:4549").to_file(tmp_path / "units.gpkg", driver="GPKG")

    result = read_units(tmp_path / "units.gpkg")

    assert result.source_crs == "EPSG:4549" and result.rows == 4
    got = shapely.from_wkb(result.table["geometry"].to_numpy(zero_copy_only=False))
    for expected, actual in zip(lonlat, got[:3]):
        assert np.abs(shapely.get_coordinates(actual) - shapely.get_coordinates(expected)).max() < 1e-7
    # Independent of the round trip: the false easting 500000 m is the 120°E central meridian.
    assert shapely.get_coordinates(got[3])[0, 0] == pytest.approx(120.0, abs=1e-9)


def test_geoparquet_in_utm_is_transformed_and_keeps_extra_columns(tmp_path):
    lonlat = [shapely.Polygon(square(LON, LAT + i * 0.01)[0]) for i in range(2)]
    to_utm = Transformer.from_crs("EPSG:4490", "EPSG:32651", always_xy=True)
    projected = [shapely.transform(g, lambda xy: np.column_stack(to_utm.transform(*xy.T))) for g in lonlat]
    on_meridian = shapely.LineString([(500000, 3_450_000), (500000, 3_450_100)])
    frame = units_frame([*projected, on_meridian], "EPSG:32651", build_year=[1998, 2005, 2010])
    frame.loc[2, "kind"] = "cable"
    frame.to_parquet(tmp_path / "units.parquet")

    result = read_units(tmp_path / "units.parquet", extent=(119, 30, 124, 32))

    assert result.source_crs == "EPSG:32651"
    assert result.table["build_year"].type == pa.int16()
    assert result.table["build_year"].to_pylist() == [1998, 2005, 2010]
    got = shapely.from_wkb(result.table["geometry"].to_numpy(zero_copy_only=False))
    for expected, actual in zip(lonlat, got[:2]):
        assert np.abs(shapely.get_coordinates(actual) - shapely.get_coordinates(expected)).max() < 1e-7
    assert shapely.get_coordinates(got[2])[:, 0] == pytest.approx([123.0, 123.0], abs=1e-9)


def test_zip_holding_one_geojson(tmp_path):
    source = write_geojson(tmp_path / "units.geojson", [feature("R-1")])
    with zipfile.ZipFile(tmp_path / "upload.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(source, "export/units.geojson")
    assert read_units(tmp_path / "upload.zip").table["unit_id"].to_pylist() == ["R-1"]


def test_gcj02_is_inverted_to_within_a_centimetre(tmp_path):
    coord_transform = pytest.importorskip("coordTransform")  # independent forward formula
    wgs84 = np.array(square()[0])
    gcj02 = [coord_transform.wgs84_to_gcj02(lon, lat) for lon, lat in wgs84]
    polygon = {"type": "Polygon", "coordinates": [gcj02]}
    path = write_geojson(tmp_path / "amap.geojson", [feature("R-1", geometry=polygon)])

    result = read_units(path, declared_crs="GCJ-02")

    assert result.source_crs == "GCJ-02"
    got = shapely.get_coordinates(shapely.from_wkb(result.table["geometry"][0].as_py()))
    assert np.abs(got - wgs84).max() < 1e-7
    assert np.abs(np.array(gcj02) - wgs84).max() > 1e-3  # the offset being undone is real


# --- refusals: geometry, kind, ids, heights -------------------------------------------------


@pytest.mark.parametrize(
    ("geometry", "problem"),
    [
        ({"type": "Polygon", "coordinates": BOW_TIE}, "Self-intersection"),
        (None, "missing geometry"),
        ({"type": "Polygon", "coordinates": []}, "empty geometry"),
        (
            {"type": "Point", "coordinates": [LON, LAT]},
            "a room needs Polygon or MultiPolygon geometry, not Point",
        ),
    ],
)
def test_bad_geometry_is_refused_naming_the_row(tmp_path, geometry, problem):
    bad = feature("R-2")
    bad["geometry"] = geometry
    error = refused(write_geojson(tmp_path / "u.geojson", [feature("R-1"), bad]))
    assert (error.row, error.unit_id, error.field) == (2, "R-2", "geometry")
    assert problem in error.problem and str(error).startswith("row 2 (unit_id 'R-2'), geometry: ")


def test_geoparquet_with_unreadable_wkb_or_native_encoding(tmp_path):
    units_frame([shapely.Polygon(square()[0])] * 2, "EPSG:4490").to_parquet(tmp_path / "u.parquet")
    table = pq.read_table(tmp_path / "u.parquet")
    geometry = pa.array([table["geometry"][0].as_py(), b"\x01\x03\x00"], pa.binary())
    table = table.set_column(table.schema.get_field_index("geometry"), "geometry", geometry)
    pq.write_table(table, tmp_path / "u.parquet")
    error = refused(tmp_path / "u.parquet")
    assert (error.row, error.problem) == (2, "unreadable WKB geometry")

    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"]["encoding"] = "polygon"
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo)}), tmp_path / "native.parquet")
    assert "encoded as 'polygon'; only WKB is supported" in str(refused(tmp_path / "native.parquet"))


def test_segment_with_polygon_and_unknown_kind_are_refused(tmp_path):
    error = refused(write_geojson(tmp_path / "a.geojson", [feature("R-1"), feature("W-1", "road")]))
    assert error.row == 2 and "a road needs LineString or MultiLineString geometry, not Polygon" in str(error)
    error = refused(write_geojson(tmp_path / "b.geojson", [feature("R-1", "tunnel")]))
    assert (error.row, error.field) == (1, "kind") and "unknown kind 'tunnel'" in str(error)


def test_duplicate_unit_ids_name_both_rows(tmp_path):
    error = refused(write_geojson(tmp_path / "u.geojson", [feature("A"), feature("B"), feature("A")]))
    assert (error.row, error.unit_id, error.field) == (3, "A", "unit_id")
    assert "duplicate unit_id, first used in row 1" in str(error)


@pytest.mark.parametrize(
    ("z_min", "z_max", "field", "problem"),
    [
        (5.0, 3.0, "z_min", "z_min 5 is above z_max 3"),
        ("abc", 3.0, "z_min", "not a number: 'abc'"),
        (0.0, None, "z_max", "missing"),
    ],
)
def test_bad_heights_are_refused(tmp_path, z_min, z_max, field, problem):
    path = write_geojson(tmp_path / "u.geojson", [feature("R-1"), feature("R-2", z_min=z_min, z_max=z_max)])
    error = refused(path)
    assert (error.row, error.unit_id, error.field, error.problem) == (2, "R-2", field, problem)


def test_boolean_heights_are_not_numbers(tmp_path):
    path = write_geojson(tmp_path / "u.geojson", [feature("R-1", z_min=False), feature("R-2", z_min=True)])
    error = refused(path)
    assert (error.row, error.field, error.problem) == (1, "z_min", "not a number: 'false'")


def test_missing_required_column(tmp_path):
    path = write_geojson(tmp_path / "u.geojson", [feature("R-1")])
    path.write_text(path.read_text().replace('"z_max"', '"height"'))
    error = refused(path)
    assert (error.row, error.field) == (None, "z_max") and "required column 'z_max' is missing" in str(error)


# --- refusals: CRS and extent ---------------------------------------------------------------


def test_file_without_crs_needs_a_declared_one(tmp_path):
    frame = units_frame([shapely.Polygon(square()[0])], None)
    frame.to_parquet(tmp_path / "u.parquet")
    error = refused(tmp_path / "u.parquet")
    assert error.field == "crs" and "states no CRS; pass declared_crs" in str(error)
    assert read_units(tmp_path / "u.parquet", declared_crs="EPSG:4490").source_crs == "EPSG:4490"


def test_declared_crs_contradicting_the_files_is_refused(tmp_path):
    units_frame([shapely.box(500000, 3_450_000, 500010, 3_450_010)], "EPSG:4549").to_file(tmp_path / "u.gpkg")
    error = refused(tmp_path / "u.gpkg", declared_crs="EPSG:4490")
    assert "declared CRS EPSG:4490 contradicts the file's own CRS EPSG:4549" in str(error)


def test_metres_in_a_file_claiming_degrees_are_refused(tmp_path):
    ring = [[640060, 3457406], [640070, 3457406], [640070, 3457416], [640060, 3457406]]
    metres = {"type": "Polygon", "coordinates": [ring]}
    error = refused(write_geojson(tmp_path / "u.geojson", [feature("R-1"), feature("R-2", geometry=metres)]))
    assert (error.row, error.field) == (2, "geometry")
    assert "(640060, 3457406) cannot be in EPSG:4326" in str(error) and "declared_crs" in str(error)


def test_degrees_declared_as_gauss_kruger_are_refused(tmp_path):
    error = refused(write_geojson(tmp_path / "u.geojson", [feature("R-1")]), declared_crs="EPSG:4549")
    assert error.row == 1 and "cannot be in EPSG:4549: they fall outside its area of use" in str(error)


def test_units_outside_the_extent_are_refused(tmp_path):
    beijing = {"type": "Polygon", "coordinates": square(116.39, 39.9)}
    path = write_geojson(tmp_path / "u.geojson", [feature("R-1"), feature("R-2", geometry=beijing)])
    error = refused(path, extent=SHANGHAI)
    assert (error.row, error.unit_id) == (2, "R-2") and "outside the bureau's extent" in str(error)


# --- refusals: encoding ---------------------------------------------------------------------


def test_gbk_geojson_is_refused_with_advice(tmp_path):
    features = [feature("R-1"), feature("R-2", notes="浦东新区")]
    path = write_geojson(tmp_path / "u.geojson", features, encoding="gbk")
    error = refused(path)
    assert (error.row, error.unit_id, error.field) == (2, "R-2", "notes")
    assert "not valid UTF-8" in str(error) and "'浦东新区'" in str(error)
    assert "convert the file to UTF-8" in str(error)


def test_gbk_column_names_are_refused(tmp_path):
    error = refused(write_geojson(tmp_path / "u.geojson", [feature("R-1", 备注="x")], encoding="gbk"))
    assert "column names are not valid UTF-8" in str(error)


def test_invalid_utf8_bytes_in_a_geopackage_attribute(tmp_path):
    frame = units_frame([shapely.Polygon(square()[0])] * 2, "EPSG:4490", notes=["ok", "ok"])
    frame.to_file(tmp_path / "u.gpkg", layer="units", SPATIAL_INDEX="NO")
    with sqlite3.connect(tmp_path / "u.gpkg") as db:
        db.execute("UPDATE units SET notes = CAST(x'c6d6b6abd0c2c7f8' AS TEXT) WHERE unit_id = 'R-2'")
    error = refused(tmp_path / "u.gpkg")
    assert (error.row, error.unit_id, error.field) == (2, "R-2", "notes") and "not valid UTF-8" in str(error)


def test_undecodable_attribute_bytes_in_geoparquet(tmp_path):
    notes = [b"ok", "浦东".encode("gbk")]
    frame = units_frame([shapely.Polygon(square()[0])] * 2, "EPSG:4490", notes=notes)
    frame.to_parquet(tmp_path / "u.parquet")
    assert pq.read_schema(tmp_path / "u.parquet").field("notes").type == pa.binary()
    error = refused(tmp_path / "u.parquet")
    assert (error.row, error.field) == (2, "notes") and "'浦东'" in str(error)


# --- refusals: size and archives ------------------------------------------------------------


def test_oversized_file_and_too_many_features(tmp_path):
    path = write_geojson(tmp_path / "u.geojson", [feature("R-1"), feature("R-2")])
    assert "over the 100-byte limit" in str(refused(path, max_bytes=100))
    assert "more than 1 features" in str(refused(path, max_features=1))


@pytest.fixture
def refused_unopened(tmp_path, monkeypatch):
    """Refuses an archive while inflating any member fails and scratch files go to a watched
    folder, which must stay empty: the refusal has to come from the zip's header alone."""

    def check(path):
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        monkeypatch.setattr(zipfile.ZipFile, "open", inflate)
        error = refused(path)
        assert not any(scratch.rglob("*"))
        return error

    def inflate(*args, **kwargs):
        raise AssertionError("a member was opened for extraction")

    return check


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path, refused_unopened):
    padded = json.dumps({"type": "FeatureCollection", "features": [feature("R-1")]}) + " " * 5_000_000
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("units.geojson", padded)
    error = refused_unopened(tmp_path / "bomb.zip")
    assert error.field == "archive" and "over the 100:1 limit" in str(error)


def test_zip_declaring_a_huge_member_is_refused_from_its_header(tmp_path, refused_unopened):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("units.geojson", json.dumps({"type": "FeatureCollection", "features": []}))
    data = bytearray((tmp_path / "bomb.zip").read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (3_000_000_000).to_bytes(4, "little")  # uncompressed size
    (tmp_path / "bomb.zip").write_bytes(data)
    error = refused_unopened(tmp_path / "bomb.zip")
    assert "declares 3000000000 bytes uncompressed, over the" in str(error)


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        (["a.geojson", "b.geojson"], "exactly one data file, this one holds 2"),
        (["inner.zip"], "nested archive 'inner.zip'"),
        (["units.shp"], "unsupported file 'units.shp'"),
    ],
)
def test_zip_must_hold_exactly_one_data_file(tmp_path, refused_unopened, members, problem):
    with zipfile.ZipFile(tmp_path / "upload.zip", "w") as zf:
        for name in members:
            zf.writestr(name, "{}")
    assert problem in str(refused_unopened(tmp_path / "upload.zip"))
