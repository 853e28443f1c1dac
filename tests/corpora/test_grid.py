"""Tests for the GeoSOT-3D-style grid (corpora.grid): hand-computed codes, properties of the
octree over random points, boxes and polygons, the domain's edges, and input errors."""
import math

import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from corpora.grid import (
    H_MAX,
    H_MIN,
    MAX_LEVEL,
    adaptive_codes,
    children,
    contains,
    cover_polygon,
    decode,
    encode,
    encode_int,
    neighbours,
    parent,
)

pytestmark = pytest.mark.release

PROPS = settings(max_examples=100, deadline=None)

# People's Square, Shanghai, 10 m above the datum.
SQUARE = (121.475, 31.2304, 10.0)

lons = st.floats(-180, 180)
lats = st.floats(-90, 90)
heights = st.floats(H_MIN, H_MAX, exclude_max=True)
# Half the examples near Shanghai and near the ground, where the platform's units are.
points = st.one_of(
    st.tuples(lons, lats, heights),
    st.tuples(st.floats(120.8, 122.2), st.floats(30.6, 31.9), st.floats(-80, 700)),
)
levels = st.integers(0, MAX_LEVEL)


def bounds(code):
    return tuple(float(b) for b in decode(code))


def in_cell(point, code):
    b = bounds(code)
    return all(b[i] <= point[i] < b[i + 3] for i in range(3))


def box_in_cell(box, code):
    """A closed box lies in the half-open cell."""
    b = bounds(code)
    return all(b[i] <= box[i] and box[i + 3] < b[i + 3] for i in range(3))


# --- hand-computed values ---------------------------------------------------------------
#
# Integer coordinates: lon/lat -> floor(deg * 2**23) + 2**31 (the 512° range [-256, 256) as
# 32 bits); h -> floor(h * 64) + 0x55555555 (2**26 m as 32 bits, h = 0 at binary 0101...).
# Digit k = lat_bit << 2 | lon_bit << 1 | h_bit, taking the k-th most significant bits.
#
# People's Square (121.475, 31.2304, 10 m):
#   lon: level-9 index floor(121.475) + 256 = 377 = 0b101111001
#   lat: level-9 index floor(31.2304) + 256 = 287 = 0b100011111
#   h:   0x55555555 + 640; the low 10 bits 341 + 640 = 981 < 1024 do not carry, so
#        the top 9 bits are those of 0x55555555: 0b010101010
#   level 1: lat 1, lon 1, h 0 -> 6 -> "G6": lon [0, 256), lat [0, 256),
#            h [(0 - 0x55555555)/64, (2**31 - 0x55555555)/64) = [-22369621.328125, 11184810.671875)
#   level 2: lat 0, lon 0, h 1 -> 1 -> "G61": lon [0, 128), lat [0, 128),
#            h [(2**30 - 0x55555555)/64, ...) = [-5592405.328125, 11184810.671875)
#   level 3: lat 0, lon 1, h 0 -> 2 -> "G612": lon [64, 128), lat [0, 64),
#            h [-5592405.328125, (2**30 + 2**29 - 0x55555555)/64 = 2796202.671875)
#   levels 4..9: (lat, lon, h) = (0,1,1) (1,1,0) (1,1,1) (1,0,0) (1,0,1) (1,1,0)
#            -> 3 6 7 4 5 6 -> "G612367456", the whole degree lon [121, 122), lat [31, 32),
#            h index 0b010101010 = 170: [(170 * 2**23 - 0x55555555)/64, + 2**17)
#            = [-87381.328125, 43690.671875)
HAND = [
    (1, "G6", (0, 0, -22369621.328125, 256, 256, 11184810.671875)),
    (2, "G61", (0, 0, -5592405.328125, 128, 128, 11184810.671875)),
    (3, "G612", (64, 0, -5592405.328125, 128, 64, 2796202.671875)),
    (9, "G612367456", (121, 31, -87381.328125, 122, 32, 43690.671875)),
]


@pytest.mark.parametrize(("level", "code", "expected"), HAND)
def test_hand_computed_codes_and_bounds(level, code, expected):
    assert encode(*SQUARE, level) == code
    assert bounds(code) == expected


def test_root_is_the_whole_domain():
    assert encode(*SQUARE, 0) == "G"
    assert bounds("G") == (-256, -256, H_MIN, 256, 256, H_MAX)
    assert (H_MIN, H_MAX) == (-22369621.328125, 44739242.671875)


def test_encode_int_hand_values():
    # Level 1 is digit 6 in the top 3 of hi's 48 bits; everything below the level is zero.
    assert encode_int(*SQUARE, 1) == (6 << 45, 0)
    # Level 9 is the 9 octal digits of "G612367456" at the top of hi.
    assert encode_int(*SQUARE, 9) == (0o612367456 << 21, 0)


def test_ground_level_is_not_a_coarse_boundary():
    # A tunnel-to-roof box from -20 m to +10 m at one point. At level 21 (32 m tall cells),
    # h = 0 sits 2/3 of the way up its cell: the low 11 bits of 0x55555555 are
    # 0b10101010101 = 1365 of 2048, so the cell is [-1365/64, 683/64) = [-21.33, 10.67).
    # That holds the box. At level 22 (16 m) the low 10 bits are 341 of 1024, so the cell is
    # [-5.33, 10.67), and that does not.
    code = adaptive_codes(SQUARE[0], SQUARE[1], -20.0, SQUARE[0], SQUARE[1], 10.0)
    assert len(code) - 1 == 21
    assert bounds(code)[2::3] == (-1365 / 64, 683 / 64)


# --- properties of points and codes -----------------------------------------------------


@PROPS
@given(points)
def test_point_lies_in_its_cell_at_every_level(point):
    codes = encode(*point, np.arange(MAX_LEVEL + 1))
    lo, hi = np.array(decode(codes)[:3]), np.array(decode(codes)[3:])
    p = np.array(point)[:, None]
    assert ((lo <= p) & (p < hi)).all()
    assert all(len(c) == level + 1 for level, c in enumerate(codes))
    assert all(codes[k].startswith(codes[k - 1]) for k in range(1, len(codes)))


@PROPS
@given(st.lists(st.tuples(points, levels), min_size=1, max_size=20))
def test_vectorised_calls_match_scalar_calls(items):
    lon, lat, h = (np.array([p[i] for p, _ in items]) for i in range(3))
    level = np.array([lv for _, lv in items])
    codes = encode(lon, lat, h, level)
    assert codes.tolist() == [encode(*p, lv) for p, lv in items]
    assert [tuple(map(float, b)) for b in zip(*decode(codes))] == [bounds(c) for c in codes]


@PROPS
@given(points, points, levels)
def test_integer_form_is_the_octal_code_and_sorts_the_same(a, b, level):
    (ha, la), (hb, lb) = encode_int(*a, level), encode_int(*b, level)
    ca, cb = encode(*a, level), encode(*b, level)
    assert int(ha) << 48 | int(la) == int(ca[1:].ljust(MAX_LEVEL, "0"), 8)
    assert (ca < cb) == ((int(ha), int(la)) < (int(hb), int(lb)))


@PROPS
@given(points, st.integers(1, MAX_LEVEL))
def test_parent_is_the_prefix_and_contains_the_child(point, level):
    code = encode(*point, level)
    up = parent(code)
    assert up == code[:-1] == encode(*point, level - 1)
    assert contains(up, code) and contains(code, code) and not contains(code, up)
    c, p = bounds(code), bounds(up)
    assert all(p[i] <= c[i] and c[i + 3] <= p[i + 3] for i in range(3))


@PROPS
@given(points, st.integers(0, MAX_LEVEL - 1))
def test_children_tile_the_parent_exactly(point, level):
    code = encode(*point, level)
    kids = children(code)
    assert len(set(kids)) == 8 and all(parent(k) == code for k in kids)
    p = bounds(code)
    mids = [(p[i] + p[i + 3]) / 2 for i in range(3)]
    halves = [((p[i], mids[i]), (mids[i], p[i + 3])) for i in range(3)]
    tiles = {((b[0], b[3]), (b[1], b[4]), (b[2], b[5])) for b in map(bounds, kids)}
    assert tiles == {(x, y, z) for x in halves[0] for y in halves[1] for z in halves[2]}
    assert encode(*point, level + 1) in kids


def expected_neighbour_count(code):
    """Count, per axis, the shifts -1/0/+1 whose interval still holds encodable values."""
    b = bounds(code)
    counts = []
    for axis, (lo, hi, top_open) in enumerate([(-180, 180, False), (-90, 90, False), (H_MIN, H_MAX, True)]):
        a0, a1 = b[axis], b[axis + 3]
        w = a1 - a0
        if top_open:
            counts.append(sum(a0 + d * w >= lo and a1 + d * w <= hi for d in (-1, 0, 1)))
        else:
            counts.append(sum(a0 + d * w <= hi and a1 + d * w > lo for d in (-1, 0, 1)))
    return math.prod(counts) - 1


def touches(a, b):
    """Closed cells a and b share a face, edge or corner (and are not the same cell)."""
    per_axis = []
    for i in range(3):
        if (a[i], a[i + 3]) == (b[i], b[i + 3]):
            per_axis.append("same")
        elif a[i + 3] == b[i] or b[i + 3] == a[i]:
            per_axis.append("adjacent")
        else:
            return False
    return "adjacent" in per_axis


@PROPS
@given(points, st.integers(1, MAX_LEVEL))
def test_neighbours_touch_are_distinct_complete_and_symmetric(point, level):
    code = encode(*point, level)
    found = neighbours(code)
    assert len(found) == len(set(found)) == expected_neighbour_count(code)
    assert code not in found
    for n in found:
        assert len(n) == len(code)
        assert touches(bounds(code), bounds(n))
        assert code in neighbours(n)


def test_neighbours_in_the_city_are_26():
    assert len(neighbours(encode(*SQUARE, 20))) == 26


def test_neighbours_at_the_domain_corners():
    # (180, 90, top) and (-180, -90, bottom): only one way out on each axis -> 2*2*2 - 1.
    for level in (1, 9, 32):
        assert len(neighbours(encode(180.0, 90.0, np.nextafter(H_MAX, 0), level))) == 7
        assert len(neighbours(encode(-180.0, -90.0, H_MIN, level))) == 7
    # On the 180° meridian at the pole at ground level: 2 * 2 * 3 - 1.
    assert len(neighbours(encode(180.0, 90.0, 0.0, 9))) == 11
    assert neighbours("G") == []


# --- adaptive level ---------------------------------------------------------------------


def clip(value, lo, hi):
    return min(max(value, lo), hi)


@st.composite
def boxes(draw):
    lon, lat, h = draw(points)
    dlon, dlat = (10 ** draw(st.floats(-9, 1)) for _ in range(2))
    dh = 10 ** draw(st.floats(-3, 5))
    return (
        lon, lat, h,
        clip(lon + dlon, -180, 180), clip(lat + dlat, -90, 90),
        clip(h + dh, H_MIN, np.nextafter(H_MAX, 0)),
    )


@PROPS
@given(boxes(), levels)
def test_adaptive_cell_holds_the_box_and_no_child_does(box, max_level):
    code = adaptive_codes(*box, max_level=max_level)
    assert len(code) - 1 <= max_level
    assert box_in_cell(box, code)
    if len(code) - 1 < max_level:
        assert not any(box_in_cell(box, child) for child in children(code))


@PROPS
@given(st.lists(boxes(), min_size=1, max_size=20))
def test_adaptive_codes_vectorised(items):
    columns = [np.array(c) for c in zip(*items)]
    assert adaptive_codes(*columns).tolist() == [adaptive_codes(*b) for b in items]


@PROPS
@given(points)
def test_a_point_box_adapts_to_the_deepest_cell(point):
    assert adaptive_codes(*point, *point) == encode(*point, MAX_LEVEL)


def test_boxes_across_the_equator_or_prime_meridian_need_the_root():
    assert adaptive_codes(121.0, -0.5, 0.0, 121.5, 0.5, 10.0) == "G"
    assert adaptive_codes(-0.1, 51.4, 0.0, 0.1, 51.6, 10.0) == "G"


# --- polygon cover ----------------------------------------------------------------------


@st.composite
def star_polygons(draw):
    """A star-shaped polygon a few cells across at `level`, so that brute force is cheap."""
    level = draw(st.integers(6, 26))
    cell = 512 / 2**level
    lon = draw(st.floats(120.8, 122.2))
    lat = draw(st.floats(30.6, 31.9))
    radius = cell * draw(st.floats(0.05, 5))
    n = draw(st.integers(3, 10))
    angles = np.sort(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n,
                                   unique=True)))
    scales = draw(st.lists(st.floats(0.2, 1), min_size=n, max_size=n))
    ring = [(lon + radius * s * math.cos(a), lat + radius * s * math.sin(a)) for a, s in zip(angles, scales)]
    polygon = shapely.Polygon(ring)
    assume(polygon.is_valid and polygon.area > 0)
    return polygon, level


@PROPS
@given(star_polygons(), st.floats(-60, 60), st.floats(0, 100), st.integers(0, 2**32 - 1))
def test_cover_has_no_gaps_and_no_disjoint_cells(polygon_level, z_min, dz, seed):
    polygon, level = polygon_level
    z_max = z_min + dz
    cover = cover_polygon(polygon, level, z_min=z_min, z_max=z_max)
    assert cover == sorted(set(cover)) and all(len(c) == level + 1 for c in cover)

    lon0, lat0, h0, lon1, lat1, h1 = (np.asarray(b) for b in decode(cover))
    assert shapely.intersects(polygon, shapely.box(lon0, lat0, lon1, lat1)).all()
    assert h0.min() <= z_min and z_max < h1.max()

    # Random interior points and the vertices (on the boundary) all fall in returned cells.
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = polygon.bounds
    lon = rng.uniform(minx, maxx, 400)
    lat = rng.uniform(miny, maxy, 400)
    keep = shapely.contains_xy(polygon, lon, lat)
    vx, vy = np.asarray(polygon.exterior.coords).T
    lon, lat = np.concatenate([lon[keep], vx]), np.concatenate([lat[keep], vy])
    h = rng.choice([z_min, z_max, (z_min + z_max) / 2], lon.size)
    assert set(encode(lon, lat, h, level).tolist()) <= set(cover)


@PROPS
@given(star_polygons())
def test_cover_matches_brute_force(polygon_level):
    polygon, level = polygon_level
    cell = 512 / 2**level
    minx, miny, maxx, maxy = polygon.bounds
    ix = np.arange(math.floor((minx + 256) / cell), math.floor((maxx + 256) / cell) + 1)
    iy = np.arange(math.floor((miny + 256) / cell), math.floor((maxy + 256) / cell) + 1)
    gx, gy = (a.ravel() for a in np.meshgrid(ix, iy))
    lon0, lat0 = gx * cell - 256, gy * cell - 256
    hit = shapely.intersects(polygon, shapely.box(lon0, lat0, lon0 + cell, lat0 + cell))
    # Footprints only: the cell corner plus half a cell, at h = 0.
    expected = encode(lon0[hit] + cell / 2, lat0[hit] + cell / 2, 0.0, level)
    assert cover_polygon(polygon, level) == sorted(expected.tolist())


def test_cover_of_a_polygon_with_a_hole_skips_the_hole():
    outer = shapely.Point(121.475, 31.23).buffer(0.05)
    ring = shapely.Polygon(outer.exterior, [shapely.Point(121.475, 31.23).buffer(0.03).exterior.coords])
    level = 16  # ~0.0078° cells: the hole holds whole cells
    with_hole, without = cover_polygon(ring, level), cover_polygon(outer, level)
    assert set(with_hole) < set(without)
    assert encode(121.475, 31.23, 0.0, level) not in with_hole


def test_cover_spans_the_height_range():
    square = shapely.box(121.0, 31.0, 121.999, 31.999)
    # Level 9 cells are whole degrees and 131072 m tall: one footprint, and the heights
    # -100 km and +100 km fall in cells -1 and +1 around the ground cell.
    assert cover_polygon(square, 9, z_min=-100_000.0, z_max=100_000.0) == sorted(
        encode(121.5, 31.5, np.array([-100_000.0, 0.0, 100_000.0]), 9).tolist()
    )


# --- underground, sky and the domain's edges --------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        (121.47, 31.23, -35.0),  # metro tunnel
        (121.47, 31.23, -6000.0),  # deep borehole
        (121.47, 31.23, 632.0),  # top of the Shanghai Tower
        (121.47, 31.23, 35_786_000.0),  # geostationary orbit
        (180.0, 90.0, H_MIN),
        (-180.0, -90.0, float(np.nextafter(H_MAX, 0))),
        (0.0, 0.0, 0.0),
        (-0.0, -1e-300, -1e-300),  # tiny negatives fall below the zero lines, not on them
    ],
)
def test_underground_sky_and_edge_points(point):
    codes = encode(*point, np.arange(MAX_LEVEL + 1))
    assert all(in_cell(point, c) for c in codes)


def test_tiny_negative_lon_is_west_of_the_prime_meridian():
    assert encode(-1e-300, 0.0, 0.0, 1)[1] in "0145"  # lon bit 0
    assert bounds(encode(-1e-300, 0.0, 0.0, MAX_LEVEL))[3] == 0.0


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode(121.0, 95.0, 0.0, 5), r"lat: 95.0 is outside \[-90, 90\]"),
        (lambda: encode(200.0, 31.0, 0.0, 5), r"lon: 200.0 is outside \[-180, 180\]"),
        (lambda: encode([121.0, float("nan")], 31.0, 0.0, 5), r"lon: nan is outside"),
        (
            lambda: encode(121.0, 31.0, H_MAX, 5),
            r"h: 44739242.671875 is outside \[-22369621.328125, 44739242.671875\)",
        ),
        (lambda: encode("east", 31.0, 0.0, 5), r"lon: must be numbers"),
        (lambda: encode(121.0, 31.0, 0.0, 33), r"level: must be 0..32, not 33"),
        (lambda: encode(121.0, 31.0, 0.0, [3, -1]), r"level: must be 0..32, not -1"),
        (lambda: encode(121.0, 31.0, 0.0, 2.5), r"level: must be integers in 0..32"),
        (lambda: encode([121.0, 121.5], [31.0, 31.1, 31.2], 0.0, 5), r"lon, lat, h, level: shapes"),
        (lambda: encode_int(121.0, -91.0, 0.0, 5), r"lat: -91.0 is outside"),
        (lambda: decode("G9"), r"code: 'G9' is not a grid code"),
        (lambda: decode(["G1", "X12"]), r"code: 'X12' is not a grid code"),
        (lambda: decode(""), r"code: '' is not a grid code"),
        (lambda: decode("G" + "0" * 33), r"code: 'G0{33}' is not a grid code"),
        (lambda: decode("G1\u0661"), r"is not a grid code"),
        (lambda: decode(np.array([1, 2])), r"codes: must be grid code strings"),
        (lambda: parent("G"), r"code: 'G' is the root cell"),
        (lambda: parent("g1"), r"code: 'g1' is not a grid code"),
        (lambda: children("G" + "7" * 32), r"code: 'G7{32}' is at MAX_LEVEL 32"),
        (lambda: neighbours(123), r"code: 123 is not a grid code"),
        (lambda: contains("G8", "G1"), r"ancestor_code: 'G8' is not a grid code"),
        (lambda: contains("G1", "G18"), r"code: 'G18' is not a grid code"),
        (
            lambda: adaptive_codes(121.0, 31.0, 0.0, 120.0, 31.1, 1.0),
            r"lon_max: 120.0 is less than lon_min 121.0",
        ),
        (lambda: adaptive_codes(121.0, 31.0, 5.0, 121.1, 31.1, 1.0), r"z_max: 1.0 is less than z_min 5.0"),
        (lambda: adaptive_codes(121.0, 31.0, 0.0, 121.1, 91.0, 1.0), r"lat_max: 91.0 is outside"),
        (lambda: adaptive_codes(121.0, 31.0, 0.0, 121.1, 31.1, 1.0, max_level=40), r"max_level: must be"),
        (lambda: cover_polygon(shapely.Point(121, 31), 5), r"polygon: must be a non-empty"),
        (lambda: cover_polygon(shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), 5), r"polygon: is not val"),
        (lambda: cover_polygon(shapely.box(179, 0, 190, 1), 5), r"polygon: 190.0 is outside \[-180, 180\]"),
        (lambda: cover_polygon(shapely.box(121, 31, 122, 32), [5, 6]), r"level: must be an integer in 0..32"),
        (lambda: cover_polygon(shapely.box(121, 31, 122, 32), 5, z_min=3.0, z_max=1.0), r"z_max: 1.0 is"),
        (lambda: cover_polygon(shapely.box(121, 31, 122, 32), 30), r"level: covering at level 30 needs more"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
