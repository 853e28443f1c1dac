"""Declassify: sensitive kinds and categories leave the release, nothing released touches a
sensitive zone or comes near a removed facility (checked the way an attacker would, in
metres, in a projection the step never uses), and no height or depth finer than the
policy's step survives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely
from pyproj import Transformer

from corpora.schema import UNIT_SCHEMA
from releases.declassify import DeclassifyPolicy, declassify

pytestmark = pytest.mark.release

ORIGIN = (121.45, 31.22)  # Shanghai
METRES_PER_DEGREE = (95_200.0, 110_900.0)  # lon, lat near 31°N, for placing test units only
TO_GAUSS_KRUGER = Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)  # CGCS2000 3° GK, CM 120°E


def _at(x_m, y_m):
    return ORIGIN[0] + np.asarray(x_m) / METRES_PER_DEGREE[0], ORIGIN[1] + np.asarray(
        y_m
    ) / METRES_PER_DEGREE[1]


def _district(n: int = 3000, seed: int = 5) -> pa.Table:
    """Rooms, pipes and facilities scattered over 2 km; heights and depths at odd values."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["room", "pipe", "facility"], n, p=[0.7, 0.2, 0.1])
    x, y = _at(rng.uniform(0, 2000, n), rng.uniform(0, 2000, n))
    w, h = rng.uniform(3, 30, n) / METRES_PER_DEGREE[0], rng.uniform(3, 30, n) / METRES_PER_DEGREE[1]
    geometry = np.where(
        kinds == "pipe",
        shapely.linestrings(np.stack([np.c_[x, y], np.c_[x + 3 * w, y + h]], axis=1)),
        shapely.box(x, y, x + w, y + h),
    )
    z_min = np.where(kinds == "pipe", -rng.uniform(0.3, 6.0, n), rng.uniform(-7.0, 60.0, n))
    z_max = z_min + np.where(kinds == "pipe", rng.uniform(0.1, 1.0, n), rng.uniform(2.0, 4.0, n))
    category = np.where(kinds == "facility", rng.choice(["military", "power_substation", ""], n), "")
    columns = {
        "unit_id": [f"U{i:05d}" for i in range(n)],
        "kind": kinds,
        "geometry": shapely.to_wkb(geometry),
        "z_min": z_min,
        "z_max": z_max,
        "sensitive_category": category,
        "building_id": [f"B{i // 20:04d}" for i in range(n)],
    }
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * n), f.type) for f in UNIT_SCHEMA})


def _geometries(table: pa.Table) -> np.ndarray:
    return shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))


def _in_metres(geometries: np.ndarray) -> np.ndarray:
    return shapely.transform(
        geometries, lambda c: np.column_stack(TO_GAUSS_KRUGER.transform(c[:, 0], c[:, 1]))
    )


ZONE = shapely.box(*_at(800, 800), *_at(1100, 1000))


def test_removes_listed_categories_and_kinds_and_counts_them():
    table = _district()
    policy = DeclassifyPolicy(remove_categories=("military",), drop_kinds=("pipe",))
    released, report = declassify(table, policy)

    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    military = table.column("sensitive_category").to_numpy(zero_copy_only=False) == "military"
    assert "military" not in released.column("sensitive_category").to_pylist()
    assert "pipe" not in released.column("kind").to_pylist()
    assert report["removed"]["kind"] == {"pipe": int((kinds == "pipe").sum())}
    assert report["removed"]["category"] == {"military": int(military.sum())}  # facilities are never pipes
    # military footprints are zones too, so a room overlapping one also goes
    assert (
        report["units_out"]
        == released.num_rows
        == table.num_rows - (kinds == "pipe").sum() - military.sum() - sum(report["removed"]["zone"].values())
    )
    kept_ids = set(released.column("unit_id").to_pylist())
    assert kept_ids <= set(table.column("unit_id").to_pylist())


def test_nothing_released_touches_a_zone_or_comes_near_a_removed_facility():
    table = _district()
    buffer_m = 60.0
    policy = DeclassifyPolicy(
        remove_categories=("military", "power_substation"),
        sensitive_zones=(ZONE.wkt,),
        zone_buffer_m=buffer_m,
    )
    released, report = declassify(table, policy)
    out = _geometries(released)
    assert report["removed"]["zone"], "the district should put some units in harm's way"

    assert not shapely.intersects(out, ZONE).any()
    removed = np.isin(
        table.column("sensitive_category").to_numpy(zero_copy_only=False), ["military", "power_substation"]
    )
    facilities = shapely.union_all(_in_metres(_geometries(table)[removed]))
    distances = shapely.distance(_in_metres(out), facilities)
    assert distances.min() >= buffer_m - 0.05  # 5 cm: the two projections' scale differs by ~2e-4

    # and nothing was withheld for no reason: every withheld unit is inside a zone or near a facility
    withheld = (
        ~np.isin(table.column("unit_id").to_pylist(), released.column("unit_id").to_pylist()) & ~removed
    )
    near = shapely.distance(_in_metres(_geometries(table)[withheld]), facilities) <= buffer_m * 1.01
    assert (near | shapely.intersects(_geometries(table)[withheld], ZONE)).all()


def test_heights_and_depths_are_coarsened_outward_to_the_step():
    table = _district()
    policy = DeclassifyPolicy(height_step_m=3.0, depth_step_m=1.0)
    released, report = declassify(table, policy)

    for name in ("z_min", "z_max"):
        z = released.column(name).to_numpy()
        step = np.where(z < 0, 1.0, 3.0)
        assert np.array_equal(z, np.round(z / step) * step), f"{name} keeps a value finer than its step"
    # the coarse range contains the true one, so no unit is placed where it is not
    assert (released.column("z_min").to_numpy() <= table.column("z_min").to_numpy()).all()
    assert (released.column("z_max").to_numpy() >= table.column("z_max").to_numpy()).all()
    pipes = released.column("kind").to_numpy(zero_copy_only=False) == "pipe"
    assert len(np.unique(released.column("z_min").to_numpy()[pipes])) <= 7  # depths 0.3..6 m → whole metres
    assert report["z"]["values_changed"] == 2 * table.num_rows  # random values are never on the step
    assert 0 < report["z"]["max_shift_m"] < 3.0


def test_policy_round_trips_and_refuses_bad_fields_by_name():
    policy = DeclassifyPolicy(
        remove_categories=("military",), sensitive_zones=(ZONE.wkt,), zone_buffer_m=50, drop_kinds=("pipe",)
    )
    assert DeclassifyPolicy.from_dict(policy.to_dict()) == policy
    for bad, field in [
        ({"height_step": 3}, "height_step"),
        ({"height_step_m": 0}, "height_step_m"),
        ({"depth_step_m": -1}, "depth_step_m"),
        ({"zone_buffer_m": "far"}, "zone_buffer_m"),
        ({"drop_kinds": ["tank"]}, "drop_kinds"),
        ({"remove_categories": "military"}, "remove_categories"),
        ({"sensitive_zones": ["POLYGON ((0 0, 1"]}, "sensitive_zones"),
        ({"sensitive_zones": ["LINESTRING (0 0, 1 1)"]}, "sensitive_zones"),
    ]:
        with pytest.raises(ValueError, match=field):
            DeclassifyPolicy.from_dict(bad)
