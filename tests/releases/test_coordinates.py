"""Every release file says what its coordinates are, read back with tools written elsewhere:
pyarrow's Parquet metadata, the GeoParquet community's validator, geopandas/pyproj, and
GDAL through pyogrio. GCJ-02 is named GCJ-02; shifted output names its mode, never its key."""
from __future__ import annotations

import dataclasses
import json

import geoparquet_validator
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from pyproj import CRS

pytestmark = pytest.mark.release

KEY = bytes(range(32))
SHIFTS = {
    "gcj02": {"mode": "gcj02"},
    "smooth": {"mode": "smooth", "max_offset_m": 100.0, "wavelength_m": 4000.0},
}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    from corpora.generator import generate_district
    from corpora.store import write_corpus
    from releases.desensitize import UNIT_POLICY
    from releases.pipeline import ReleaseSpec, run_release

    folder = tmp_path_factory.mktemp("coordinates")
    write_corpus(generate_district(seed=5, rooms=600), folder / "district.parquet")
    built = {}
    # Rooms at their own footprints: a 600-room district is too small for the default's cells
    # to reach k and l (nor k alone, for a third of its units), and the coordinates are what these
    # tests read.
    exact = dataclasses.replace(UNIT_POLICY, sensitive=(), l=1, location="exact", max_suppressed=1.0)
    for name, shift in SHIFTS.items():
        spec = ReleaseSpec(shift=shift, outputs=("geoparquet", "geopackage", "geojson"), desensitize=exact)
        report = run_release(folder / "district.parquet", spec, KEY, folder / name)
        built[name] = {fmt: folder / name / out["path"] for fmt, out in report["outputs"].items()} | {"report": report}
    return built


def test_gcj02_output_names_gcj02_in_every_format(releases):
    files = releases["gcj02"]
    geo = json.loads(pq.read_schema(files["geoparquet"]).metadata[b"geo"])
    crs = geo["columns"]["geometry"]["crs"]
    assert crs["name"] == "GCJ-02" and "id" not in crs and "GCJ-02" in crs["remarks"]
    parsed = CRS.from_json_dict(crs)
    assert parsed.name == "GCJ-02" and parsed.to_epsg() is None  # not mistaken for WGS 84 / CGCS2000
    assert not parsed.equals(CRS.from_epsg(4326)) and not parsed.equals(CRS.from_epsg(4490))

    import geopandas

    assert geopandas.read_parquet(files["geoparquet"]).crs.name == "GCJ-02"
    gpkg = pyogrio.read_info(files["geopackage"])["crs"]
    assert 'GEOGCS["GCJ-02"' in gpkg and "4326" not in gpkg.split("DATUM")[0]

    collection = json.loads(files["geojson"].read_text())
    note = collection["miliao:coordinates"]
    assert note == files["report"]["coordinates"]
    assert note["crs"] == "GCJ-02" and note["shifted"] and note["shift"] == {"mode": "gcj02"}
    assert pyogrio.read_info(files["geojson"])["features"] == files["report"]["units_out"]  # GDAL reads it


def test_shifted_output_says_it_is_shifted_and_by_what_mode_not_the_key(releases):
    files, report = releases["smooth"], releases["smooth"]["report"]
    metadata = pq.read_schema(files["geoparquet"]).metadata
    crs = json.loads(metadata[b"geo"])["columns"]["geometry"]["crs"]
    assert crs["name"] == "CGCS2000 shifted (smooth_field)" and "id" not in crs
    assert CRS.from_json_dict(crs).to_epsg() is None
    note = json.loads(metadata[b"miliao:coordinates"])
    assert note["shifted"] and note["shift"]["mode"] == "smooth_field" and note["shift"]["max_offset_m"] == 100.0
    assert "key" not in note["shift"] and "key_id" not in note["shift"]
    assert json.loads(files["geojson"].read_text())["miliao:coordinates"] == note
    assert "CGCS2000 shifted (smooth_field)" in pyogrio.read_info(files["geopackage"])["crs"]
    key_id = report["shift"]["mode"]["key_id"]
    for fmt in ("geoparquet", "geopackage", "geojson"):
        data = files[fmt].read_bytes()
        assert KEY.hex().encode() not in data and key_id.encode() not in data, fmt


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_the_geoparquet_files_conform_to_the_specification(releases, name):
    report = geoparquet_validator.check(str(releases[name]["geoparquet"]))
    assert not geoparquet_validator.failed(report), geoparquet_validator.failed(report)
    outcome = {o["id"]: o["status"] for o in report["outcomes"]}
    assert outcome["/conf/core/crs-projjson"] == "pass"
    # GeoParquet 1.1's bbox covering column, its statistics included, is there and conforms.
    covering = {k: v for k, v in outcome.items() if k.startswith("/conf/covering/")}
    assert len(covering) >= 5 and set(covering.values()) == {"pass"}, covering
    assert outcome["/conf/distribution/geospatial-statistics"] == "pass"


def test_a_recipients_package_says_the_same_as_the_release(releases, tmp_path):
    from access import packages

    files = releases["gcj02"]
    spec = packages.PackageSpec(source=files["geoparquet"], fingerprint_key=b"recipient-key-0123456789",
                                code_key=b"release-code-key-0123456789",
                                precision_m=files["report"]["lightweight"]["precision_m"])
    path = packages.write_geoparquet(spec, tmp_path / "package.parquet")
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["columns"]["geometry"]["crs"]["name"] == "GCJ-02"
    text = b"".join(packages.geojson_chunks(spec, name="package")).decode()
    collection = json.loads(text)
    assert collection["miliao:coordinates"]["crs"] == "GCJ-02"
    # The package's grid codes are those of its own (marked) geometry, not the base's.
    from releases.columns import grid_codes

    table = pq.read_table(path)
    geometries = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    again = grid_codes(shapely.bounds(geometries), table.column("z_min").to_numpy(),
                       table.column("z_max").to_numpy(), precision_m=spec.precision_m)
    assert again.equals(table.column("grid_code").combine_chunks())
    assert np.isfinite(shapely.bounds(geometries)).all()


def _bboxes(table):
    import pyarrow.compute as pc

    return np.column_stack([pc.struct_field(table.column("bbox"), name).to_numpy() for name in ("xmin", "ymin", "xmax", "ymax")])


def test_the_bbox_column_is_the_extent_of_the_geometry_released_not_the_true_one(releases, tmp_path):
    """Shifted, then fingerprinted per recipient: each file's bbox is that of its own geometry.
    A bbox of the unshifted geometry would republish true positions; one of the release's
    geometry in a recipient's file would show where the mark moved it."""
    from access import packages

    files = releases["smooth"]
    released = pq.read_table(files["geoparquet"])
    geometry = shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))
    assert np.array_equal(_bboxes(released), shapely.bounds(geometry))

    spec = packages.PackageSpec(source=files["geoparquet"], fingerprint_key=b"recipient-key-0123456789",
                                code_key=b"release-code-key-0123456789",
                                precision_m=files["report"]["lightweight"]["precision_m"])
    marked = pq.read_table(packages.write_geoparquet(spec, tmp_path / "package.parquet"))
    marked_geometry = shapely.from_wkb(marked.column("geometry").to_numpy(zero_copy_only=False))
    assert np.array_equal(_bboxes(marked), shapely.bounds(marked_geometry))
    base = dict(zip(released.column("unit_id").to_pylist(), _bboxes(released).tolist()))
    moved = [base[u] != b for u, b in zip(marked.column("unit_id").to_pylist(), _bboxes(marked).tolist())]
    assert 0 < sum(moved)  # the mark moved vertices, and the package's bbox followed them
    # A recipient's GeoJSON carries no bbox of the base either; nor do the release's other formats.
    text = b"".join(packages.geojson_chunks(spec, name="package")).decode()
    assert '"bbox"' not in text and '"xmin"' not in text
    assert "bbox" not in pyogrio.read_info(files["geopackage"])["fields"]


def test_readers_skip_row_groups_outside_a_window(releases, tmp_path):
    """Rows in Hilbert order within a batch, row groups with bbox statistics: pyarrow's dataset filter
    and geopandas' bbox read skip row groups, and return exactly the units in the window."""
    import geopandas
    import pyarrow.dataset as ds

    from releases.writers import GeoParquetStreamWriter

    released = pq.read_table(releases["gcj02"]["geoparquet"]).drop_columns(["bbox"])
    path = tmp_path / "small-groups.parquet"
    with GeoParquetStreamWriter(path, row_group_rows=16) as writer:
        for batch in released.to_batches(max_chunksize=64):
            writer.write(batch)
    geometry = shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))
    west, south, east, north = shapely.total_bounds(geometry)
    window = (west, south, west + (east - west) / 3, south + (north - south) / 3)
    b = shapely.bounds(geometry)
    inside = int(((b[:, 0] <= window[2]) & (b[:, 2] >= window[0]) & (b[:, 1] <= window[3]) & (b[:, 3] >= window[1])).sum())

    wanted = ((ds.field("bbox", "xmin") <= window[2]) & (ds.field("bbox", "xmax") >= window[0])
              & (ds.field("bbox", "ymin") <= window[3]) & (ds.field("bbox", "ymax") >= window[1]))
    [fragment] = ds.dataset(path).get_fragments()
    groups = pq.ParquetFile(path).num_row_groups
    read = fragment.split_by_row_group(wanted)
    assert groups >= 8 and 0 < len(read) <= groups / 2, (len(read), groups)
    assert 0 < inside == len(geopandas.read_parquet(path, bbox=window)) == ds.dataset(path).count_rows(filter=wanted)
