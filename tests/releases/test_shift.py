"""Release step 3, shift: the three modes, their bounds and state, geometry handling, the
distortion report, and the privacy claims tested by attacking them."""
from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import shapely
from coordTransform import coordTransform as reference
from releases.shift import (
    CellRigidShift,
    GCJ02Shift,
    ShiftMode,
    SmoothFieldShift,
    attack_residuals,
    measure_shift,
    shift_geometries,
)

pytestmark = pytest.mark.release

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CENTRE = (121.4737, 31.2304)
GEOD = pyproj.Geod(ellps="GRS80")


def modes():
    return [GCJ02Shift(), SmoothFieldShift(KEY), CellRigidShift(KEY), CellRigidShift(KEY, max_rotation_deg=1)]


def around_centre(n, spread_deg, seed=0):
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-spread_deg, spread_deg, (2, n))
    return CENTRE[0] + lon, CENTRE[1] + lat


def offsets_in_frame(mode, lon, lat):
    lon2, lat2 = mode.apply(lon, lat)
    x, y = mode.frame.to_metres(lon, lat)
    x2, y2 = mode.frame.to_metres(lon2, lat2)
    return x2 - x, y2 - y


def boxes_in_frame(frame, x0, y0, width, height):
    """Boxes given in frame metres, as lon/lat polygons."""
    boxes = shapely.box(x0, y0, x0 + width, y0 + height)
    return shapely.transform(boxes, frame.to_degrees, interleaved=False)


# --- GCJ-02 -------------------------------------------------------------------------------


def test_gcj02_agrees_with_an_independent_implementation():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(74.0, 135.0, 5000), rng.uniform(18.0, 53.0, 5000)
    ref_lon, ref_lat = map(np.asarray, reference.wgs84_to_gcj02(lon, lat))
    got_lon, got_lat = GCJ02Shift().apply(lon, lat)
    assert np.abs(got_lon - ref_lon).max() < 1e-6
    assert np.abs(got_lat - ref_lat).max() < 1e-6
    # and against the reference's pure-Python path, not only its C extension
    for i in range(0, 5000, 250):
        expected = reference._py_wgs84_to_gcj02(lon[i], lat[i])
        assert np.allclose(expected, (got_lon[i], got_lat[i]), rtol=0, atol=1e-9)


def test_gcj02_moves_shanghai_by_hundreds_of_metres_and_leaves_the_world_outside_china():
    lon, lat = np.meshgrid(np.linspace(120.9, 122.1, 25), np.linspace(30.7, 31.9, 25))
    lon, lat = lon.ravel(), lat.ravel()
    lon2, lat2 = GCJ02Shift().apply(lon, lat)
    _, _, metres = GEOD.inv(lon, lat, lon2, lat2)
    assert metres.min() > 100.0 and metres.max() < 700.0
    paris = GCJ02Shift().apply(np.array([2.35]), np.array([48.86]))
    assert np.array_equal(np.concatenate(paris), [2.35, 48.86])


# --- smooth field ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_offset_m, wavelength_m", [(300.0, 2000.0), (100.0, 1000.0), (50.0, 5000.0)])
def test_smooth_field_offset_and_strain_stay_within_their_bounds(max_offset_m, wavelength_m):
    mode = SmoothFieldShift(KEY, max_offset_m=max_offset_m, wavelength_m=wavelength_m)
    lon, lat = around_centre(20000, 0.3)
    dx, dy = offsets_in_frame(mode, lon, lat)
    size = np.hypot(dx, dy)
    assert size.max() <= max_offset_m + 1e-6
    assert size.max() > 0.6 * max_offset_m  # the bound is not vacuous

    # Jacobian of the map by central differences in frame metres: |J - I| <= strain_bound.
    x, y = mode.frame.to_metres(lon[:3000], lat[:3000])
    h = 0.5

    def image(px, py):
        return np.column_stack(mode.frame.to_metres(*mode.apply(*mode.frame.to_degrees(px, py))))

    jac = np.stack(
        [(image(x + h, y) - image(x - h, y)) / (2 * h), (image(x, y + h) - image(x, y - h)) / (2 * h)], axis=2
    )
    strain = np.linalg.norm(jac - np.eye(2), ord=2, axis=(1, 2))
    assert strain.max() <= mode.strain_bound + 1e-3
    assert strain.max() > 0.2 * mode.strain_bound


def test_smooth_field_is_deterministic_per_key_and_batch_independent():
    lon, lat = around_centre(5000, 0.2)
    first = SmoothFieldShift(KEY).apply(lon, lat)
    again = SmoothFieldShift(KEY).apply(lon, lat)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    alone = SmoothFieldShift(KEY).apply(lon[:1], lat[:1])
    np.testing.assert_allclose(np.concatenate(alone), [first[0][0], first[1][0]], rtol=0, atol=1e-11)

    mine = np.column_stack(offsets_in_frame(SmoothFieldShift(KEY), lon, lat))
    theirs = np.column_stack(offsets_in_frame(SmoothFieldShift(OTHER_KEY), lon, lat))
    assert np.median(np.hypot(*(mine - theirs).T)) > 50.0


def test_smooth_field_refuses_parameters_that_could_fold():
    with pytest.raises(ValueError, match=r"^wavelength_m"):
        SmoothFieldShift(KEY, max_offset_m=300.0, wavelength_m=1500.0)


def test_points_outside_the_local_frame_are_refused():
    with pytest.raises(ValueError, match=r"within 2\.0 degrees"):
        SmoothFieldShift(KEY).apply(np.array([116.4]), np.array([39.9]))
    with pytest.raises(ValueError, match=r"within 2\.0 degrees"):
        CellRigidShift(KEY).apply(np.array([121.4, np.nan]), np.array([31.2, 31.2]))


# --- state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", modes(), ids=lambda m: f"{m.name}")
def test_state_round_trips_through_json(mode):
    state = json.loads(json.dumps(mode.state_dict()))
    lon, lat = around_centre(500, 0.1)
    for rebuilt in (type(mode).from_state(state), ShiftMode.from_state(state)):
        assert type(rebuilt) is type(mode)
        assert rebuilt.state_dict() == mode.state_dict()
        (lon2, lat2), (lon3, lat3) = rebuilt.apply(lon, lat), mode.apply(lon, lat)
        assert np.array_equal(lon2, lon3) and np.array_equal(lat2, lat3)


def test_describe_publishes_a_key_id_not_the_key():
    public = SmoothFieldShift(KEY).describe()
    assert "key" not in public and KEY.hex() not in json.dumps(public)
    assert public["key_id"] == CellRigidShift(KEY).describe()["key_id"]
    assert public["key_id"] != SmoothFieldShift(OTHER_KEY).describe()["key_id"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"key": "not hex"}, "key"),
        ({"key": "00" * 8}, "key"),
        ({"max_offset_m": -1.0}, "max_offset_m"),
        ({"max_offset_m": True}, "max_offset_m"),
        ({"wavelength_m": float("nan")}, "wavelength_m"),
        ({"wavelength_m": 500.0}, "wavelength_m"),
        ({"origin": [200.0, 31.0]}, "origin"),
        ({"origin": "Shanghai"}, "origin"),
        ({"colour": "red"}, "colour"),
        ({"mode": "cell_rigid"}, "mode"),
        (None, "wavelength_m"),  # a field missing
    ],
)
def test_bad_state_raises_value_error_naming_the_field(change, field):
    state = SmoothFieldShift(KEY).state_dict()
    if change is None:
        del state["wavelength_m"]
    else:
        state.update(change)
    with pytest.raises(ValueError, match=rf"^{field}"):
        SmoothFieldShift.from_state(state)


def test_bad_cell_state_and_unknown_modes_are_refused():
    state = CellRigidShift(KEY).state_dict()
    with pytest.raises(ValueError, match=r"^max_rotation_deg"):
        CellRigidShift.from_state({**state, "max_rotation_deg": 60.0})
    with pytest.raises(ValueError, match=r"^mode"):
        ShiftMode.from_state({**state, "mode": "rot13"})
    with pytest.raises(TypeError, match="mapping"):
        ShiftMode.from_state([("mode", "gcj02")])


# --- cell mode ----------------------------------------------------------------------------------


def rooms_across_cells(mode, n=600, seed=2):
    """Rooms of 3-12 m in frame metres over a 3 km square, some straddling cell borders."""
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(-1500, 1500, n), rng.uniform(-1500, 1500, n)
    x0[:50] = np.round(x0[:50] / mode.cell_m) * mode.cell_m - 2.0  # straddle a column border
    return boxes_in_frame(mode.frame, x0, y0, rng.uniform(3, 12, n), rng.uniform(3, 12, n))


def per_vertex(mode, geoms):
    return np.column_stack(mode.frame.to_metres(*shapely.get_coordinates(geoms).T))


def test_cell_mode_moves_each_unit_rigidly_with_its_cell():
    mode = CellRigidShift(KEY)
    rooms = rooms_across_cells(mode)
    moved = shift_geometries(rooms, mode)
    owner = np.repeat(np.arange(rooms.size), shapely.get_num_coordinates(rooms))
    move = per_vertex(mode, moved) - per_vertex(mode, rooms)
    first = move[np.searchsorted(owner, np.arange(rooms.size))]
    assert np.abs(move - first[owner]).max() < 1e-6  # one vector per unit
    assert np.hypot(*first.T).max() <= mode.max_offset_m + 1e-6

    rep = shapely.point_on_surface(rooms)
    cells = mode.cell_of(shapely.get_x(rep), shapely.get_y(rep))
    n_cells = len(np.unique(cells, axis=0))
    assert n_cells > 20
    assert len(np.unique(np.round(first, 3), axis=0)) == n_cells  # same cell, same move; others differ

    before = shapely.transform(rooms, mode.frame.to_metres, interleaved=False)
    after = shapely.transform(moved, mode.frame.to_metres, interleaved=False)
    assert np.abs(shapely.area(after) / shapely.area(before) - 1).max() < 1e-9
    assert np.abs(shapely.length(after) / shapely.length(before) - 1).max() < 1e-9


def test_cell_rotation_is_rigid_and_within_the_offset_bound():
    mode = CellRigidShift(KEY, max_rotation_deg=2.0)
    rooms = rooms_across_cells(mode)
    moved = shift_geometries(rooms, mode)
    before = shapely.transform(rooms, mode.frame.to_metres, interleaved=False)
    after = shapely.transform(moved, mode.frame.to_metres, interleaved=False)
    assert np.abs(shapely.area(after) / shapely.area(before) - 1).max() < 1e-9
    assert np.abs(shapely.length(after) / shapely.length(before) - 1).max() < 1e-9
    move = per_vertex(mode, moved) - per_vertex(mode, rooms)
    assert np.hypot(*move.T).max() <= mode.max_offset_m + 1e-6
    assert np.ptp(move[:5], axis=0).max() > 1e-3  # vertices of one unit move differently: it turned


def test_explicit_cells_override_the_points_own_cells():
    mode = CellRigidShift(KEY)
    lon, lat = around_centre(100, 0.05)
    together = mode.apply(lon, lat, cell=np.zeros((100, 2), dtype=np.int64))
    step = np.column_stack(together) - np.column_stack([lon, lat])
    assert np.ptp(step, axis=0).max() < 1e-12
    with pytest.raises(ValueError, match=r"^cell"):
        mode.apply(lon, lat, cell=np.zeros((100, 2)))


# --- geometry handling ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", modes(), ids=lambda m: m.name)
def test_shift_geometries_keeps_types_validity_z_and_missing_values(mode):
    lon, lat = CENTRE
    d = 1e-4
    square = [(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d)]
    hole = [(lon + d / 4, lat + d / 4), (lon + d / 2, lat + d / 4), (lon + d / 2, lat + d / 2)]
    geoms = np.array(
        [
            shapely.Polygon(square, [hole]),
            shapely.MultiPolygon(
                [shapely.box(lon, lat, lon + d, lat + d), shapely.box(lon + 2 * d, lat, lon + 3 * d, lat + d)]
            ),
            shapely.LineString([(lon, lat), (lon + 0.01, lat + 0.01)]),
            shapely.MultiLineString([[(lon, lat), (lon, lat + d)], [(lon + d, lat), (lon + d, lat + d)]]),
            shapely.Point(lon, lat),
            shapely.Polygon([(x, y, 12.5) for x, y in square]),
            None,
            shapely.Polygon(),
            shapely.GeometryCollection([shapely.Point(lon, lat), shapely.LineString(square)]),
        ],
        dtype=object,
    )
    snapshot = geoms.copy()
    moved = shift_geometries(geoms, mode)
    assert all(a is b for a, b in zip(geoms, snapshot, strict=True))  # the input array is untouched
    assert moved[6] is None
    present = np.array([g is not None for g in geoms])
    assert np.array_equal(shapely.get_type_id(moved[present]), shapely.get_type_id(geoms[present]))
    assert np.array_equal(shapely.is_valid(moved[present]), shapely.is_valid(geoms[present]))
    assert np.array_equal(shapely.has_z(moved[present]), shapely.has_z(geoms[present]))
    assert np.array_equal(shapely.get_num_coordinates(moved), shapely.get_num_coordinates(geoms))
    assert np.all(shapely.get_coordinates(moved[5:6], include_z=True)[:, 2] == 12.5)
    assert not shapely.equals(moved[0], geoms[0])


# --- the report -------------------------------------------------------------------------------------


def adjacent_squares(frame, n=12, side=40.0):
    x0, y0 = np.meshgrid(np.arange(n) * side - 200.0, np.arange(n) * side - 200.0)
    return boxes_in_frame(frame, x0.ravel(), y0.ravel(), side, side)


def test_measure_shift_finds_no_topology_damage_from_a_gentle_smooth_field():
    mode = SmoothFieldShift(KEY, max_offset_m=50.0, wavelength_m=2000.0)
    squares = adjacent_squares(mode.frame)
    report = measure_shift(squares, shift_geometries(squares, mode), mode)
    assert report.count == 144
    assert report.touching_pairs == 2 * 11 * 12 + 2 * 11 * 11  # edges and corners
    assert report.broken_adjacency == 0 and report.new_intersections == 0
    assert 0.0 < report.offset_m.p50 <= report.offset_m.p95 <= report.offset_m.max <= 50.0 * 1.01
    assert 0.0 < report.area_error.p50 <= report.area_error.max <= (1 + mode.strain_bound) ** 2 - 1
    assert 0.0 < report.length_error.max <= mode.strain_bound
    assert set(report.attack_residual_m) == {1, 5, 20}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["mode"]["key_id"] and "key" not in data["mode"]
    assert set(data["offset_m"]) == {"p50", "p95", "max", "histogram"}
    assert sum(data["offset_m"]["histogram"]["counts"]) == 144  # the whole distribution, for the release page


def test_measure_shift_shows_the_cell_mode_tearing_at_cell_borders_but_keeping_shapes():
    mode = CellRigidShift(KEY, cell_m=200.0)
    squares = adjacent_squares(mode.frame)
    report = measure_shift(squares, shift_geometries(squares, mode), mode)
    assert report.broken_adjacency > 0
    assert report.area_error.max < 1e-4 and report.length_error.max < 1e-4  # ~3e-5: rigid in the frame
    assert report.offset_m.max <= 300.0 * 1.01


def test_measure_shift_rejects_misaligned_input():
    squares = adjacent_squares(SmoothFieldShift(KEY).frame, n=2)
    with pytest.raises(ValueError, match="aligned"):
        measure_shift(squares, squares[:3], GCJ02Shift())


# --- attacks ------------------------------------------------------------------------------------------


def test_attack_residuals_back_the_documented_privacy_claims():
    centre = {"centre_lon": CENTRE[0], "centre_lat": CENTRE[1]}
    public = attack_residuals(GCJ02Shift(), **centre)
    assert max(public.values()) < 1.0  # public formula: no landmark needed

    smooth = attack_residuals(SmoothFieldShift(KEY), **centre)
    assert smooth[20] < smooth[5] < smooth[1]

    cells = attack_residuals(CellRigidShift(KEY), **centre)
    assert min(cells.values()) > 50.0


def test_a_landmark_reveals_its_own_cell_and_nothing_about_the_others():
    mode = CellRigidShift(KEY)
    rng = np.random.default_rng(3)
    landmark = np.array([[250.0, 250.0]])  # in cell (0, 0)
    same = rng.uniform(0.0, 500.0, (200, 2))
    other = rng.uniform(-2000.0, 2000.0, (2000, 2))
    other = other[(np.floor(other / 500.0) != 0).any(axis=1)]

    def moved(points):
        lon, lat = mode.frame.to_degrees(*points.T)
        return np.column_stack(mode.frame.to_metres(*mode.apply(lon, lat)))

    offset = landmark - moved(landmark)  # the attacker's one-landmark fit
    assert np.hypot(*(moved(same) + offset - same).T).max() < 1e-6
    assert np.median(np.hypot(*(moved(other) + offset - other).T)) > 50.0


def test_a_policy_names_each_mode_one_way_and_the_state_the_other():
    """One registry builds both: a policy's `smooth`/`cell`/`gcj02` (pipeline.SHIFT_MODES, what
    stewards pick) and a state's `smooth_field`/`cell_rigid`/`gcj02` (what a report records)."""
    from releases.pipeline import SHIFT_MODES, UNSHIFTED, build_shift

    key = bytes(range(32))
    built = {mode: build_shift({"mode": mode}, key) for mode in SHIFT_MODES}
    assert built.pop(UNSHIFTED) is None
    assert {mode: m.name for mode, m in built.items()} == {"smooth": "smooth_field", "cell": "cell_rigid",
                                                          "gcj02": "gcj02"}
    assert {c.policy_name for c in ShiftMode._registry.values()} == set(SHIFT_MODES) - {UNSHIFTED}
    for mode in built.values():  # the state a report keeps rebuilds the same mode
        assert ShiftMode.from_state(mode.state_dict()).state_dict() == mode.state_dict()
    smooth = build_shift({"mode": "smooth", "max_offset_m": 50.0}, key)
    assert isinstance(smooth, SmoothFieldShift) and smooth.max_offset_m == 50.0
    with pytest.raises(ValueError, match=r"shift: GCJ-02 takes no parameters, not \['max_offset_m'\]"):
        build_shift({"mode": "gcj02", "max_offset_m": 50.0}, key)
    with pytest.raises(ValueError, match="shift: .*wavelength"):
        build_shift({"mode": "cell", "wavelength_m": 50.0}, key)
