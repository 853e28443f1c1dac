"""Lightweight: simplification keeps every geometry valid, never adds vertices and keeps
neighbouring rooms touching; floors and buildings dissolve their rooms without losing area;
quantized coordinates sit on the grid; pruning keeps only what the policy lists."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from corpora.schema import UNIT_SCHEMA
from releases.columns import grid_codes
from releases.lightweight import LightweightPolicy, lightweight, metres_per_degree

pytestmark = pytest.mark.release

ORIGIN = (121.45, 31.22)
DEG_X, DEG_Y = (1 / m for m in metres_per_degree(ORIGIN[1]))  # degrees per metre
CORE = ["unit_id", "kind", "geometry", "z_min", "z_max", "grid_code"]


def _box_m(x0, y0, x1, y1):
    """A box given in metres east and north of ORIGIN."""
    return shapely.box(
        ORIGIN[0] + x0 * DEG_X, ORIGIN[1] + y0 * DEG_Y, ORIGIN[0] + x1 * DEG_X, ORIGIN[1] + y1 * DEG_Y
    )


def _table(geometries, **columns) -> pa.Table:
    n = len(geometries)
    columns = {
        "unit_id": [f"U{i:05d}" for i in range(n)],
        "kind": ["room"] * n,
        "geometry": shapely.to_wkb(np.asarray(geometries)),
        "z_min": np.zeros(n),
        "z_max": np.full(n, 3.0),
        **columns,
    }
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * n), f.type) for f in UNIT_SCHEMA})


def _geometries(table: pa.Table) -> np.ndarray:
    return shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))


def _building_rooms(buildings=3, floors=4, rooms=5):
    """Rows of 6 m x 5 m rooms sharing walls, the same plan on every floor."""
    geometries, building, floor, area = [], [], [], []
    for b in range(buildings):
        for f in range(floors):
            for r in range(rooms):
                x = b * 100 + r * 6
                geometries.append(_box_m(x, 0, x + 6, 5))
                building.append(f"B{b}")
                floor.append(f)
                area.append(30.0)
    n = len(geometries)
    return _table(
        geometries,
        building_id=building,
        floor=floor,
        area_m2=area,
        household_size=[2] * n,
        monthly_rent=np.arange(n, dtype=float),
        district=["浦东新区"] * n,
        room_use=["office" if i % 2 else "residential" for i in range(n)],
        grid_code=[f"1230{b}{i % 5}" for i, b in enumerate(np.repeat(np.arange(buildings), floors * rooms))],
        z_min=np.array(floor) * 3.0,
        z_max=np.array(floor) * 3.0 + 2.8,
    )


def _wiggly(n: int = 200, seed: int = 11) -> np.ndarray:
    """Star-shaped rooms and crooked pipes with many small wiggles: work for the simplifier."""
    rng = np.random.default_rng(seed)
    polygons = []
    for i in range(n):
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(8, 60)))
        radius = rng.uniform(5, 15) * (1 + rng.uniform(-0.08, 0.08, len(angles)))
        cx, cy = (i % 20) * 40, (i // 20) * 40
        polygons.append(
            shapely.Polygon(
                np.c_[
                    ORIGIN[0] + (cx + radius * np.cos(angles)) * DEG_X,
                    ORIGIN[1] + (cy + radius * np.sin(angles)) * DEG_Y,
                ]
            )
        )
    lines = [
        shapely.LineString(
            np.c_[
                ORIGIN[0] + (np.arange(30) * 3.0) * DEG_X,
                ORIGIN[1] + (i * 40 + rng.normal(0, 0.3, 30)) * DEG_Y,
            ]
        )
        for i in range(20)
    ]
    return np.array(polygons + lines, dtype=object)


def test_simplification_keeps_validity_and_never_adds_vertices():
    geometries = _wiggly()
    table = _table(geometries, kind=["room"] * 200 + ["pipe"] * 20)
    released, report = lightweight(table, LightweightPolicy(simplify_tolerance_m=1.0, precision_m=0.0))

    out = _geometries(released)
    assert released.column("unit_id").to_pylist() == table.column("unit_id").to_pylist()
    assert shapely.is_valid(out).all()
    assert (shapely.get_num_coordinates(out) <= shapely.get_num_coordinates(geometries)).all()
    assert (
        report["vertices"]["after"]
        < report["vertices"]["before"]
        == shapely.get_num_coordinates(geometries).sum()
    )
    assert report["wkb_bytes"]["after"] < report["wkb_bytes"]["before"]
    assert report["topology"] == {"valid": 220, "invalid": 0, "passed": True}
    # the tolerance is in metres: outlines move by about a metre, never much more (GEOS may also
    # drop a ring's start point after the rest is simplified, which can add up to a second metre)
    moved = shapely.hausdorff_distance(
        shapely.transform(out, lambda c: c / [DEG_X, DEG_Y]),
        shapely.transform(geometries, lambda c: c / [DEG_X, DEG_Y]),
    )
    assert 0.5 < moved.max() <= 2.0
    assert np.median(moved) <= 1.0


def test_neighbouring_rooms_still_share_their_wall_after_simplification():
    # the shared wall zigzags by 10 cm, well under the 0.5 m tolerance; both rooms carry the same vertices
    wall = [(10.0, 0.0), (10.1, 2.0), (9.9, 4.0), (10.05, 6.0), (10.0, 8.0)]
    left = shapely.Polygon([(0, 0)] + wall + [(0, 8)])
    right = shapely.Polygon(wall + [(20, 8), (20, 0)])
    to_degrees = lambda c: [ORIGIN[0], ORIGIN[1]] + c * [DEG_X, DEG_Y]  # noqa: E731
    rooms = shapely.transform(np.array([left, right]), to_degrees)
    released, _ = lightweight(_table(rooms), LightweightPolicy(simplify_tolerance_m=0.5, precision_m=0.0))

    a, b = _geometries(released)
    assert shapely.get_num_coordinates(a) < shapely.get_num_coordinates(rooms[0])  # the zigzag went
    assert shapely.is_valid(a) and shapely.is_valid(b)
    shared = shapely.intersection(a, b)
    assert shapely.area(shared) == pytest.approx(0.0, abs=1e-16)  # no overlap ...
    assert shapely.length(shared) == pytest.approx(8 * DEG_Y, rel=1e-6)  # ... and the whole wall still shared
    assert shapely.area(shapely.union_all([a, b])) == pytest.approx(
        shapely.area(shapely.union_all(rooms)), rel=1e-3
    )


@pytest.mark.parametrize("level", ["floor", "building"])
def test_floors_and_buildings_dissolve_their_rooms(level):
    table = _building_rooms()
    released, report = lightweight(table, LightweightPolicy(level_of_detail=level, precision_m=0.0))

    rooms = _geometries(table)
    building = np.array(table.column("building_id").to_pylist())
    floor = table.column("floor").to_numpy()
    expected = 3 * 4 if level == "floor" else 3
    assert released.num_rows == report["features"]["after"] == expected
    assert set(released.column("kind").to_pylist()) == {level}
    assert released.column("unit_count").to_pylist() == [table.num_rows // expected] * expected
    for row in released.to_pylist():
        members = building == row["building_id"]
        if level == "floor":
            members &= floor == row["floor"]
        # one outline per group, as large as its rooms together; a building's floors share one plan
        footprint = members if level == "floor" else members & (floor == 0)
        area = shapely.area(shapely.from_wkb(row["geometry"]))
        assert area == pytest.approx(shapely.area(rooms[footprint]).sum(), rel=1e-9)
        assert row["area_m2"] == pytest.approx(30.0 * members.sum())  # summed, not averaged
        assert row["household_size"] == 2 * members.sum()
        assert row["monthly_rent"] == pytest.approx(table.column("monthly_rent").to_numpy()[members].mean())
        assert row["z_min"] == table.column("z_min").to_numpy()[members].min()
        assert row["z_max"] == table.column("z_max").to_numpy()[members].max()
        assert row["district"] == "浦东新区"  # shared by all members
        assert row["room_use"] is None  # members differ
        # the cell holding the released outline (releases.columns), never the corpus's code
        outline = shapely.from_wkb(row["geometry"])
        assert row["grid_code"] == grid_codes(
            shapely.bounds(outline)[None], [row["z_min"]], [row["z_max"]], precision_m=0.0
        )[0].as_py()
    assert report["vertices"]["before"] == 5 * table.num_rows
    assert report["vertices"]["after"] == 5 * expected  # the walls between rooms are gone


def test_rooms_that_are_not_a_clean_coverage_still_dissolve_to_their_union():
    rooms = [
        _box_m(0, 0, 6, 5),
        _box_m(5, 0, 11, 5),  # overlapping by a metre
        _box_m(0, 10, 10, 20),
        _box_m(2, 12, 4, 14),  # one inside the other
        _box_m(0, 30, 10, 35),
        _box_m(0, 35, 4, 40),
        _box_m(4, 35, 10, 40),  # a T-junction
    ]
    floors = ["a", "a", "b", "b", "c", "c", "c"]
    table = _table(rooms, building_id=floors, floor=[0] * 7)
    released, _ = lightweight(table, LightweightPolicy(level_of_detail="floor", precision_m=0.0))
    for row in released.to_pylist():
        members = [room for room, floor in zip(rooms, floors, strict=True) if floor == row["building_id"]]
        outline = shapely.from_wkb(row["geometry"])
        assert shapely.is_valid(outline)
        assert shapely.area(outline) == pytest.approx(shapely.area(shapely.union_all(members)), rel=1e-9)


def test_grid_level_aggregates_per_cell_of_the_given_geometry_and_bins_without_codes():
    table = _building_rooms()  # its grid_code column holds no real codes: they are recomputed
    policy = LightweightPolicy(level_of_detail="grid", grid_level=20)
    released, report = lightweight(table, policy)
    rooms = _geometries(table)
    member_codes = grid_codes(shapely.bounds(rooms), table.column("z_min").to_numpy(),
                              table.column("z_max").to_numpy(), precision_m=policy.precision_m).to_pylist()
    cells = {c[: policy.grid_level] for c in member_codes}  # the first grid_level characters
    assert sorted(released.column("grid_code").to_pylist()) == sorted(cells)
    assert len(set(released.column("grid_code").to_pylist())) > 1  # the buildings lie 100 m apart
    assert sum(released.column("unit_count").to_pylist()) == table.num_rows
    assert report["aggregation"]["units_binned"] == 0

    uncoded = table.drop_columns(["grid_code"])
    released, report = lightweight(uncoded, LightweightPolicy(level_of_detail="grid", grid_level=20))
    assert report["aggregation"]["units_binned"] == table.num_rows
    assert "bins" in report["aggregation"]["note"]
    assert sum(released.column("unit_count").to_pylist()) == table.num_rows


def test_quantized_coordinates_are_multiples_of_the_grid():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 500, 300), rng.uniform(0, 500, 300)
    geometries = np.concatenate(
        [_box_m(x, y, x + rng.uniform(3, 9, 300), y + rng.uniform(3, 9, 300)), _wiggly(40)]
    )
    released, report = lightweight(_table(geometries), LightweightPolicy(precision_m=1.0))

    from releases.columns import grid_step_deg

    grid = np.array(report["quantization"]["grid_deg"])
    # The fingerprint grid: never more than a metre along either axis, the same in both.
    assert grid == pytest.approx([grid_step_deg(1.0)] * 2) and grid[0] <= min(DEG_X, DEG_Y)
    coords = shapely.get_coordinates(_geometries(released)) / grid
    assert np.abs(coords - np.round(coords)).max() < 1e-6
    assert report["topology"]["passed"]


def test_units_smaller_than_the_grid_collapse_and_are_counted():
    tiny = _box_m(0.1, 0.1, 0.3, 0.3)
    released, report = lightweight(_table([tiny, _box_m(0, 0, 6, 5)]), LightweightPolicy(precision_m=1.0))
    assert released.column("unit_id").to_pylist() == ["U00001"]
    assert report["features"] == {"before": 2, "after": 1, "collapsed": 1}


def test_the_numpy_path_for_quadrilaterals_matches_geos():
    """Quadrilaterals skip GEOS when numpy can tell nothing would change; big-endian WKB
    takes the GEOS path for the same shapes, and both must give the same result."""
    rng = np.random.default_rng(8)
    n = 400
    quarter = n // 4
    corners = rng.uniform(0, 12, (n, 4, 2))  # the last quarter: any order, often concave or crossed
    corners[:quarter] = [[0, 0], [6, 0], [6, 5], [0, 5]] + rng.uniform(0, 0.6, (quarter, 4, 2))
    flat = slice(quarter, 2 * quarter)  # a corner nearly on the chord of its neighbours
    corners[flat, 1] = (corners[flat, 0] + corners[flat, 2]) / 2 + 0.1
    thin = slice(2 * quarter, 3 * quarter)  # trapezoids thinner than the tolerance, or barely thicker
    length, height, zero = rng.uniform(3, 12, quarter), rng.uniform(0.2, 1.5, quarter), np.zeros(quarter)
    corners[thin] = np.stack(
        [np.c_[zero, zero], np.c_[length, zero], np.c_[length - 1, height], np.c_[zero + 1, height]], 1
    )
    corners = corners + (np.arange(n)[:, None, None] % 20) * 30
    rings = np.concatenate([corners, corners[:, :1]], axis=1) * [DEG_X, DEG_Y] + ORIGIN
    quads = shapely.polygons(rings)
    little, big = _table(quads), _table(quads)
    big = big.set_column(
        big.schema.get_field_index("geometry"), "geometry", pa.array(shapely.to_wkb(quads, byte_order=0))
    )

    for policy in (
        LightweightPolicy(),
        LightweightPolicy(precision_m=0.0),
        LightweightPolicy(simplify_tolerance_m=0.0),
    ):
        fast, fast_report = lightweight(little, policy)
        slow, slow_report = lightweight(big, policy)
        assert fast.column("unit_id").to_pylist() == slow.column("unit_id").to_pylist()
        assert shapely.equals_exact(_geometries(fast), _geometries(slow), tolerance=0).all()
        assert fast_report["topology"] == slow_report["topology"]
        assert fast_report["vertices"] == slow_report["vertices"]


def test_pruning_keeps_only_the_listed_attributes():
    table = _building_rooms()
    released, report = lightweight(table, LightweightPolicy(keep_attributes=("area_m2", "room_use")))
    assert released.column_names == CORE + ["area_m2", "room_use"]
    assert "owner_name" in report["attributes"]["dropped"]
    released, _ = lightweight(table, LightweightPolicy(level_of_detail="floor", keep_attributes=("area_m2",)))
    assert released.column_names == CORE + ["area_m2", "unit_count"]
    with pytest.raises(ValueError, match="rent_per_m2"):
        lightweight(table, LightweightPolicy(keep_attributes=("rent_per_m2",)))


def test_policy_round_trips_and_refuses_bad_fields_by_name():
    policy = LightweightPolicy(level_of_detail="grid", grid_level=12, keep_attributes=("area_m2",))
    assert LightweightPolicy.from_dict(policy.to_dict()) == policy
    assert LightweightPolicy.from_dict(LightweightPolicy().to_dict()) == LightweightPolicy()
    for bad, field in [
        ({"level_of_detail": "district"}, "level_of_detail"),
        ({"grid_level": 0}, "grid_level"),
        ({"precision_m": -1}, "precision_m"),
        ({"simplify_tolerance_m": None}, "simplify_tolerance_m"),
        ({"keep_attributes": "area_m2"}, "keep_attributes"),
        ({"lod": "room"}, "lod"),
    ]:
        with pytest.raises(ValueError, match=field):
            LightweightPolicy.from_dict(bad)
