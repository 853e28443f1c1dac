"""Units that touch in the corpus still touch in the written release: rooms of a floor,
segments meeting end to end or end to side. Measured here independently of the pipeline's
own report, on the file it wrote, for a district of about 20,000 rooms."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import shapely

pytestmark = pytest.mark.release

KEY = bytes(range(32))
ORIGIN = (121.50, 31.23)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """A 20,000-room district and its release under a policy that keeps the segments too
    (l = 1: the default's l-diversity on rent withholds every unit without a rent) and every
    room at its own footprint (location "exact"; the default's grid cells have no room walls
    to keep in contact, and "exact" takes no sensitive column)."""
    from corpora.generator import generate_district
    from corpora.store import write_corpus
    from releases.desensitize import UNIT_POLICY
    from releases.pipeline import ReleaseSpec, run_release

    folder = tmp_path_factory.mktemp("topology")
    write_corpus(generate_district(seed=31, rooms=20_000), folder / "district.parquet")
    spec = ReleaseSpec(desensitize=dataclasses.replace(UNIT_POLICY, l=1, sensitive=(), location="exact"))
    report = run_release(folder / "district.parquet", spec, KEY, folder / "r")
    written = pq.read_table(folder / "r" / report["outputs"]["geoparquet"]["path"])
    return folder / "district.parquet", report, written


def _contacts(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows that touch in the corpus: rooms of one floor of one building, and the
    road, pipe and cable segments among themselves. Returns (i, j, is_room)."""
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    rooms = kinds == "room"
    segments = np.isin(kinds, ["road", "pipe", "cable"])
    floor_key = pc.binary_join_element_wise(
        table.column("building_id"), table.column("floor").cast(pa.string()), "/"
    ).to_numpy(zero_copy_only=False)
    group = np.where(rooms, floor_key, np.where(segments, "segments", None))
    geometries = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    left, right = shapely.STRtree(geometries).query(geometries)  # boxes only: cheap
    keep = (left < right) & (group[left] != None) & (group[left] == group[right])  # noqa: E711
    left, right = left[keep], right[keep]
    touching = shapely.touches(geometries[left], geometries[right])
    return left[touching], right[touching], rooms[left[touching]]


def test_contacts_survive_the_shift_and_lightweighting_in_the_written_file(district):
    from releases.desensitize import pseudonymize
    from releases.pipeline import subkey

    corpus, report, written = district
    raw = pq.read_table(corpus, columns=["unit_id", "kind", "building_id", "floor", "geometry"])
    left, right, is_room = _contacts(raw)
    assert is_room.sum() > 10_000 and (~is_room).sum() > 100

    ids = pseudonymize(raw.column("unit_id"), subkey(KEY, "pseudonyms")).to_numpy(zero_copy_only=False)
    released = written.column("unit_id").to_numpy(zero_copy_only=False)
    order = np.argsort(released)
    at = np.minimum(np.searchsorted(released[order], ids), len(released) - 1)
    found = released[order][at] == ids
    both = found[left] & found[right]
    geometries = shapely.from_wkb(written.column("geometry").to_numpy(zero_copy_only=False))[order]
    still = shapely.touches(geometries[at[left[both]]], geometries[at[right[both]]])
    rooms = is_room[both]
    assert both.sum() > 10_000
    assert (~still[rooms]).mean() <= 0.01, (~still[rooms]).mean()
    assert (~still[~rooms]).mean() <= 0.01, (~still[~rooms]).mean()

    # The report says the same, measured on the same file.
    measured = report["lightweight"]["topology"]
    assert measured["contacts"] > 10_000 and measured["broken_share"] <= 0.01
    assert {"room", "segment"} <= set(measured["by_layer"])
    assert "touching_pairs" not in report["shift"]["measured"]  # no figure from before lightweighting


def _rooms_with_t_junctions():
    """Two rows of rooms on one floor whose walls do not line up (every wall of the upper
    row meets the lower row's ceiling between two corners), and a pipe ending on a road."""
    from releases.lightweight import metres_per_degree

    mx, my = metres_per_degree(ORIGIN[1])

    def box(x0, y0, x1, y1):
        return shapely.box(ORIGIN[0] + x0 / mx, ORIGIN[1] + y0 / my, ORIGIN[0] + x1 / mx, ORIGIN[1] + y1 / my)

    lower = [box(x, 0, x + 7.3, 6) for x in np.arange(0, 7.3 * 8, 7.3)]
    upper = [box(x, 6, x + 9.1, 12) for x in np.arange(0, 9.1 * 6, 9.1)]
    road = shapely.LineString([(ORIGIN[0], ORIGIN[1] - 20 / my), (ORIGIN[0] + 90 / mx, ORIGIN[1] - 20 / my)])
    pipe = shapely.LineString([(ORIGIN[0] + 33.3 / mx, ORIGIN[1] - 20 / my), (ORIGIN[0] + 33.3 / mx, ORIGIN[1] - 60 / my)])
    geometries = np.array([*lower, *upper, road, pipe], dtype=object)
    n = len(geometries)
    kinds = ["room"] * (n - 2) + ["road", "pipe"]
    table = pa.table({
        "unit_id": [f"U{i}" for i in range(n)], "kind": kinds,
        "geometry": pa.array(shapely.to_wkb(geometries), pa.binary()),
        "z_min": np.zeros(n), "z_max": np.full(n, 3.0), "grid_code": pa.nulls(n, pa.string()),
        "building_id": ["B"] * (n - 2) + [None, None], "floor": pa.array([1] * (n - 2) + [None, None], pa.int16()),
    })
    return table, geometries


@pytest.mark.parametrize("noded", [False, True])
def test_noding_is_what_keeps_t_junctions_through_the_shift_and_rounding(noded):
    from releases import topology
    from releases.lightweight import LightweightPolicy, lightweight
    from releases.pipeline import build_shift, subkey
    from releases.shift import shift_geometries

    table, original = _rooms_with_t_junctions()
    groups = topology.coverage_groups(table)
    left, right = shapely.STRtree(original).query(original, predicate="touches")
    keep = (left < right) & (groups[left] == groups[right])
    left, right = left[keep], right[keep]
    assert len(left) > 20
    if noded:
        wkb, inserted = topology.node(table.column("geometry"), groups)
        assert inserted > 5
        table = table.set_column(table.schema.get_field_index("geometry"), "geometry", wkb)
    mode = build_shift({"mode": "smooth", "max_offset_m": 100.0, "wavelength_m": 4000.0}, subkey(KEY, "shift"))
    moved = shift_geometries(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), mode)
    table = table.set_column(table.schema.get_field_index("geometry"), "geometry",
                             pa.array(shapely.to_wkb(moved), pa.binary()))
    table = table.append_column(topology.COVERAGE, pa.array(groups))
    released, report = lightweight(table, LightweightPolicy(simplify_tolerance_m=0.5, precision_m=0.5))
    out = shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))
    broken = ~shapely.touches(out[left], out[right])
    assert report["topology"]["passed"]
    if noded:
        assert not broken.any()
        assert shapely.area(out).sum() == pytest.approx(shapely.area(original).sum(), rel=0.05)
    else:
        assert broken.sum() >= 3  # without noding, rounding pulls the junctions apart


def test_simplification_keeps_the_vertices_neighbours_share():
    from releases import topology

    square = shapely.Polygon([(0, 0), (10, 0), (10, 5), (10, 10), (0, 10), (0, 7), (0.1, 5), (0, 3)])
    neighbour = shapely.Polygon([(10, 0), (20, 0), (20, 10), (10, 10), (10, 5)])
    wiggly = shapely.LineString([(0, -5), (5, -5.1), (10, -5), (15, -4.9), (20, -5)])
    geometries = np.array([square, neighbour, wiggly], dtype=object)
    shared = topology.shared_coordinates(pa.array(shapely.to_wkb(geometries)), np.array([5, 5, 6]))
    assert np.sort(shared).tolist() == [10 + 0j, 10 + 5j, 10 + 10j]
    coords = shapely.get_coordinates(geometries)
    out = topology.simplify_between(geometries, np.isin(coords[:, 0] + 1j * coords[:, 1], shared), 0.5)
    assert shapely.get_coordinates(out[0]).tolist().count([10.0, 5.0]) == 1  # kept: the neighbour's corner
    assert [0.1, 5.0] not in shapely.get_coordinates(out[0]).tolist()  # a wiggle of its own wall: gone
    assert shapely.touches(out[0], out[1]) and shapely.is_valid(out).all()
    assert shapely.get_num_coordinates(out[2]) == 2
