"""Writers: every format reads back (with readers other than the writer's own path) with the
same rows, geometries and CRS; GeoParquet carries valid "geo" metadata; a failure part-way
leaves no file under a final name; streaming in chunks gives the same file as one shot."""

from __future__ import annotations

import hashlib
import json

import geopandas
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer

from corpora.schema import UNIT_SCHEMA
from releases import writers
from releases.writers import (
    GeoParquetStreamWriter,
    geojson_digits,
    quadrilateral_wkb,
    quadrilaterals,
    write_all,
    write_geojson,
    write_geopackage,
    write_geoparquet,
)

pytestmark = pytest.mark.release


def _release(n: int = 300, seed: int = 2) -> pa.Table:
    """Rooms (quadrilaterals and L-shapes) and pipes, coordinates on a 1e-6° grid."""
    rng = np.random.default_rng(seed)
    x, y = np.round(121.4 + rng.uniform(0, 0.05, n), 6), np.round(31.2 + rng.uniform(0, 0.05, n), 6)
    d = 5e-5
    rooms = shapely.box(x, y, x + d, y + d)
    l_shapes = shapely.polygons(
        np.stack(
            [
                np.c_[x, y],
                np.c_[x + 2 * d, y],
                np.c_[x + 2 * d, y + d],
                np.c_[x + d, y + d],
                np.c_[x + d, y + 2 * d],
                np.c_[x, y + 2 * d],
            ],
            axis=1,
        )
    )
    pipes = shapely.linestrings(np.stack([np.c_[x, y], np.c_[x + 3 * d, y + d]], axis=1))
    kind = np.array(["room", "room", "pipe"])[np.arange(n) % 3]
    geometry = np.where(np.arange(n) % 3 == 0, rooms, np.where(kind == "room", l_shapes, pipes))
    columns = {
        "unit_id": [f"U{i:05d}" for i in range(n)],
        "kind": kind,
        "geometry": shapely.to_wkb(geometry),
        "z_min": np.where(kind == "pipe", -2.0, 0.0),
        "z_max": np.where(kind == "pipe", -1.0, 3.0),
        "grid_code": [f"31{i % 7}" for i in range(n)],
        "floor": np.where(kind == "pipe", None, np.arange(n) % 9),
        "area_m2": rng.uniform(10, 90, n),
        "room_use": ["办公" if i % 2 else "住宅" for i in range(n)],
    }
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * n), f.type) for f in UNIT_SCHEMA})


def _geometries(wkb) -> np.ndarray:
    return shapely.from_wkb(np.asarray(wkb.to_pylist(), dtype=object))


def _by_id(table: pa.Table) -> pa.Table:
    """The rows in unit_id order, without the bbox column: the writer orders each batch's rows
    in Hilbert order and adds their bbox (tests/releases/test_coordinates.py checks both)."""
    return table.drop_columns([c for c in ("bbox",) if c in table.column_names]).sort_by("unit_id")


def test_geoparquet_round_trips_with_valid_geo_metadata(tmp_path):
    table = _release()
    path = tmp_path / "units.parquet"
    write_geoparquet(table, path)

    back = pq.read_table(path)
    assert _by_id(back).equals(_by_id(table))
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    geo = json.loads(back.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB"
    assert column["geometry_types"] == ["LineString", "Polygon"]
    assert column["bbox"] == pytest.approx(list(shapely.total_bounds(_geometries(table.column("geometry")))))
    assert CRS.from_json_dict(column["crs"]).to_epsg() == 4490
    # an independent reader takes the file as GeoParquet
    frame = geopandas.read_parquet(path).sort_values("unit_id")
    assert frame.crs.to_epsg() == 4490
    assert len(frame) == table.num_rows
    assert shapely.equals_exact(
        frame.geometry.values, _geometries(_by_id(table).column("geometry")), tolerance=0
    ).all()


def test_geoparquet_and_geopackage_reproject_to_a_requested_crs(tmp_path):
    table = _release()
    write_geoparquet(table, tmp_path / "gk.parquet", crs="EPSG:4549")
    write_geopackage(table, tmp_path / "gk.gpkg", crs="EPSG:4549")

    to_gk = Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)
    expected = shapely.transform(
        _geometries(_by_id(table).column("geometry")), lambda c: np.column_stack(to_gk.transform(c[:, 0], c[:, 1]))
    )
    frame = geopandas.read_parquet(tmp_path / "gk.parquet").sort_values("unit_id")
    assert frame.crs.to_epsg() == 4549
    assert shapely.equals_exact(frame.geometry.values, expected, tolerance=1e-6).all()
    meta, gpkg = pyogrio.read_arrow(tmp_path / "gk.gpkg")
    assert meta["crs"] == "EPSG:4549"
    assert shapely.equals_exact(_geometries(_by_id(gpkg).column("geometry")), expected, tolerance=1e-6).all()


def test_geopackage_round_trips(tmp_path):
    table = _release()
    path = tmp_path / "units.gpkg"
    write_geopackage(table, path, layer="rooms")

    meta, back = pyogrio.read_arrow(path, layer="rooms")
    assert meta["crs"] == "EPSG:4490"
    assert meta["geometry_type"] == "Unknown"  # rooms and pipes together
    assert back.num_rows == table.num_rows
    assert shapely.equals_exact(
        _geometries(back.column("geometry")), _geometries(table.column("geometry")), tolerance=0
    ).all()
    assert back.column("unit_id").to_pylist() == table.column("unit_id").to_pylist()
    assert back.column("floor").to_pylist() == table.column("floor").to_pylist()
    assert back.column("room_use").to_pylist() == table.column("room_use").to_pylist()


def test_geojson_is_rfc7946_at_the_release_precision(tmp_path):
    table = _release()
    path = tmp_path / "units.geojson"
    digits = geojson_digits(1.0)
    write_geojson(table, path, precision_digits=digits)

    collection = json.loads(path.read_text())
    assert collection["name"] == "units"
    assert len(collection["features"]) == table.num_rows
    meta, back = pyogrio.read_arrow(path)
    assert CRS(meta["crs"]).equals(CRS("EPSG:4326"))  # RFC 7946: WGS 84 lon/lat
    # CGCS2000 and WGS 84 agree to centimetres; the file rounds to `digits` decimals
    assert shapely.equals_exact(
        _geometries(back.column("wkb_geometry")),
        _geometries(table.column("geometry")),
        tolerance=0.5 * 10**-digits,
    ).all()


def test_geojson_digits_keep_the_release_precision():
    assert [geojson_digits(p) for p in (10.0, 1.0, 0.1)] == [6, 7, 8]
    for precision in (0.05, 0.3, 1.0, 2.5, 10.0):
        # rounding to these digits moves a point by at most a twentieth of the precision
        assert 0.5 * 10 ** -geojson_digits(precision) * 111_320 <= precision / 20


def test_write_all_publishes_every_format_or_none(tmp_path, monkeypatch):
    table = _release()
    written = write_all(table, tmp_path, basename="release-7")
    assert set(written) == {"geoparquet", "geopackage", "geojson"}
    for entry in written.values():
        data = open(entry["path"], "rb").read()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    (tmp_path / "again").mkdir()
    again = write_all(table, tmp_path / "again", basename="release-7")
    assert {k: v["sha256"] for k, v in again.items()} == {
        k: v["sha256"] for k, v in written.items()
    }  # deterministic

    def broken(*args, **kwargs):
        raise OSError("disk full")

    failed = tmp_path / "failed"
    failed.mkdir()
    monkeypatch.setattr(writers, "write_geopackage", broken)
    with pytest.raises(OSError, match="disk full"):
        write_all(table, failed, basename="release-8")
    assert list(failed.iterdir()) == []  # no final names, and no partial files left behind


def test_streaming_three_chunks_equals_one_shot(tmp_path):
    table = _release(301)
    write_geoparquet(table, tmp_path / "one.parquet")
    with GeoParquetStreamWriter(tmp_path / "streamed.parquet") as writer:
        for batch in table.to_batches(max_chunksize=101):
            writer.write(batch)
        assert not (tmp_path / "streamed.parquet").exists()  # published only at close

    one, streamed = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "streamed.parquet")
    assert pq.ParquetFile(tmp_path / "streamed.parquet").metadata.num_row_groups == 3
    assert _by_id(streamed).equals(_by_id(one))
    assert json.loads(streamed.schema.metadata[b"geo"]) == json.loads(one.schema.metadata[b"geo"])


def test_an_aborted_stream_leaves_nothing(tmp_path):
    table = _release()
    with pytest.raises(RuntimeError):
        with GeoParquetStreamWriter(tmp_path / "units.parquet") as writer:
            writer.write(table.slice(0, 100))
            raise RuntimeError("worker lost")
    assert list(tmp_path.iterdir()) == []


def test_quadrilateral_wkb_is_read_and_written_without_geos():
    table = _release()
    wkb = table.column("geometry").combine_chunks()
    is_quad, coords = quadrilaterals(wkb)
    assert is_quad.tolist() == [i % 3 == 0 for i in range(table.num_rows)]  # the boxes, not L-shapes or pipes
    assert np.array_equal(
        coords, shapely.get_coordinates(_geometries(wkb.filter(pa.array(is_quad)))).reshape(-1, 5, 2)
    )
    assert quadrilateral_wkb(coords).equals(wkb.filter(pa.array(is_quad)))
    big_endian = pa.array(shapely.to_wkb(_geometries(wkb), byte_order=0))
    assert not quadrilaterals(big_endian)[0].any()
