"""A GeoSOT-3D-style hierarchical 3D grid (cf. GB/T 40087-2021): an octree in Z order over
longitude, latitude and height, from the sky down to underground.

Domain and subdivision
----------------------
* Longitude and latitude use one binary subdivision of the extended range [-256°, 256°),
  as GeoSOT extends the earth to 512°. Level 9 cells are then exactly 1° × 1° on whole
  degrees. We do not follow GeoSOT in stretching minutes and seconds to 64 (that leaves unused
  codes and cells of uneven size). Every level uses the same integer arithmetic instead, and
  minute/second lines fall inside cells. Only points with lon in [-180, 180] and lat in
  [-90, 90] can be encoded. The antimeridian and the poles are not wrapped.
* Height is in metres against the caller's vertical datum; negative is underground. The axis
  spans 2**26 m (67,109 km), so at every level a height cell is about as tall as a horizontal
  cell is wide near Shanghai (level 32: 1.6 cm tall, 1.3 cm north–south, 1.1 cm east–west).
  The axis does not start at h = 0. h = 0 sits at the integer coordinate 0x55555555
  (binary 0101…), one third of the way up. Because of that, ground level lies a third of a cell
  from the nearest boundary at *every* level, never on a boundary. A building with a basement,
  or a pipe that comes up to the surface, therefore still gets a small cell. If h = 0 were the
  level-1 split, they would get the root. The axis covers [H_MIN, H_MAX) ≈ [-22,370 km,
  +44,739 km), which reaches past geostationary orbit.
* MAX_LEVEL = 32: each axis is a 32-bit integer coordinate, floor(value × 2**k) plus an offset
  (k = 23 bits per degree, 6 bits per metre). This needs only power-of-two scaling, so it is
  exact. Decoded bounds are exact binary fractions, and every point lies in
  [min, max) of its cell.

Code format
-----------
"G" followed by one octal digit per level (level = len(code) - 1); "G" alone is the root
(level 0). That root is the cell that boxes across the equator or the prime meridian
adapt to. Digit k = lat_bit << 2 | lon_bit << 1 | h_bit, where each bit is the axis's k-th
most significant bit. The code is therefore a Morton (Z-order) code. A prefix means
containment, and codes at one level sort in Z order.

Integer form (encode_int)
-------------------------
32 levels × 3 bits = 96 bits. These come as two uint64 arrays: hi holds levels 1..16 and lo
holds levels 17..32, 48 bits each. Bits below the level are zero, so (hi, lo, level) names a
cell, and sorting by (hi, lo) gives Z order.

Functions over points, boxes and codes are vectorised over numpy arrays. Like ufuncs, they
return a scalar when every argument is a scalar. Per-cell helpers (parent, children,
neighbours, contains) take one code string.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

PREFIX = "G"
MAX_LEVEL = 32

_PER_DEGREE = 2**23  # integer units per degree: 512° is 2**32 units
_EQUATOR = 2**31  # integer coordinate of lon = 0 and of lat = 0
_PER_METRE = 64  # integer units per metre: 2**26 m is 2**32 units
_GROUND = 0x55555555  # integer coordinate of h = 0 (see module docstring)
H_MIN = -_GROUND / _PER_METRE
H_MAX = (2**32 - _GROUND) / _PER_METRE

# Integer coordinates of the encodable lon/lat range (both ends are encodable).
_LON_RANGE = (_EQUATOR - 180 * _PER_DEGREE, _EQUATOR + 180 * _PER_DEGREE)
_LAT_RANGE = (_EQUATOR - 90 * _PER_DEGREE, _EQUATOR + 90 * _PER_DEGREE)

_CODE_RE = re.compile(rf"{PREFIX}[0-7]{{0,{MAX_LEVEL}}}")
_OFFSETS = np.array([o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)])


def _lookup_tables():
    """Interleaving goes through lookup tables, four levels at a time. The index is
    lat_nibble << 8 | lon_nibble << 4 | h_nibble. _SPREAD maps it to the 12-bit Morton chunk
    (four octal digits). _ASCII maps it to those four digits as characters, packed in a
    uint32. _UNSPREAD maps a chunk back to its index."""
    index = np.arange(4096)
    lat, lon, h = index >> 8, (index >> 4) & 15, index & 15
    spread = np.zeros(4096, np.int64)
    for bit in range(3, -1, -1):
        digit = ((lat >> bit) & 1) << 2 | ((lon >> bit) & 1) << 1 | ((h >> bit) & 1)
        spread = spread << 3 | digit
    ascii_digits = np.stack([(spread >> shift) & 7 for shift in (9, 6, 3, 0)], axis=1) + ord("0")
    unspread = np.empty(4096, np.int64)
    unspread[spread] = index
    return spread, np.ascontiguousarray(ascii_digits.astype(np.uint8)).view(np.uint32).ravel(), unspread


_SPREAD, _ASCII, _UNSPREAD = _lookup_tables()
_NIBBLE_SHIFTS = np.arange(28, -1, -4)  # chunk j holds levels 4j+1 .. 4j+4


# --- validation -------------------------------------------------------------------------


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _floats(name, value, lo, hi, *, open_top=False):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be numbers") from None
    bad = ~((a >= lo) & ((a < hi) if open_top else (a <= hi)))
    if bad.any():
        interval = f"[{_bound(lo)}, {_bound(hi)}{')' if open_top else ']'}"
        raise ValueError(f"{name}: {float(a[bad].flat[0])!r} is outside {interval}")
    return a


def _lons(name, value):
    return _floats(name, value, -180, 180)


def _lats(name, value):
    return _floats(name, value, -90, 90)


def _heights(name, value):
    return _floats(name, value, H_MIN, H_MAX, open_top=True)


def _levels(name, value, *, scalar=False):
    a = np.asarray(value)
    if a.dtype.kind not in "iu" or (scalar and a.ndim):
        raise ValueError(f"{name}: must be {'an integer' if scalar else 'integers'} in 0..{MAX_LEVEL}")
    bad = (a < 0) | (a > MAX_LEVEL)
    if bad.any():
        raise ValueError(f"{name}: must be 0..{MAX_LEVEL}, not {int(a[bad].flat[0])}")
    return a.astype(np.int64)


def _broadcast(**named):
    try:
        arrays = np.broadcast_arrays(*named.values())
    except ValueError:
        shapes = ", ".join(str(np.shape(v)) for v in named.values())
        raise ValueError(f"{', '.join(named)}: shapes {shapes} do not broadcast") from None
    return arrays[0].shape, [a.ravel() for a in arrays]


def _ordered(lo_name, lo, hi_name, hi):
    bad = hi < lo
    if bad.any():
        raise ValueError(f"{hi_name}: {float(hi[bad][0])!r} is less than {lo_name} {float(lo[bad][0])!r}")


def _code(name, code) -> str:
    if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
        raise ValueError(f"{name}: {code!r} is not a grid code")
    return code


# --- integer coordinates and codes ------------------------------------------------------


def _deg_int(lon):
    """Integer coordinate of a longitude or latitude; exact because scaling by 2**23 is exact."""
    return np.floor(lon * _PER_DEGREE).astype(np.int64) + _EQUATOR


def _h_int(h):
    return np.floor(h * _PER_METRE).astype(np.int64) + _GROUND


def _bit_length(a):
    """Vectorised int.bit_length for values below 2**53 (frexp's exponent is exact)."""
    return np.frexp(a.astype(np.float64))[1].astype(np.int64)


def _chunks(x, y, z):
    """(n, 8) table indices for the 8 chunks of 4 levels."""
    s = _NIBBLE_SHIFTS
    return ((y[:, None] >> s) & 15) << 8 | ((x[:, None] >> s) & 15) << 4 | ((z[:, None] >> s) & 15)


def _strings(x, y, z, level):
    """Codes for 1-d integer coordinates (lon, lat, h) at per-point levels. Digits past a
    code's level become NUL bytes. numpy's fixed-width byte strings then drop them, which gives
    variable-length codes without a Python loop."""
    digits = _ASCII[_chunks(x, y, z)].view(np.uint8)
    width = int(level.max(initial=0))
    buf = np.empty((x.size, width + 1), np.uint8)
    buf[:, 0] = ord(PREFIX)
    buf[:, 1:] = digits[:, :width]
    buf[:, 1:][np.arange(width) >= level[:, None]] = 0
    return buf.view(f"S{width + 1}").ravel().astype(f"U{width + 1}")


def _parse(codes):
    """Integer min-corner coordinates (x, y, z) and levels of an array of codes, flattened,
    with the original shape."""
    arr = np.asarray(codes)
    if arr.dtype.kind in "OS" or arr.size == 0:
        arr = arr.astype(str)
    if arr.dtype.kind != "U":
        raise ValueError("codes: must be grid code strings")
    shape, flat = arr.shape, arr.ravel()
    length = np.strings.str_len(flat)
    too_long = length > MAX_LEVEL + 1
    if too_long.any():
        raise ValueError(f"code: {str(flat[too_long][0])!r} is not a grid code")
    chars = flat.astype(f"U{MAX_LEVEL + 1}").view(np.uint32).reshape(-1, MAX_LEVEL + 1)
    if chars.size and chars.max() > 127:
        raise ValueError(f"code: {str(flat[(chars > 127).any(axis=1)][0])!r} is not a grid code")
    chars = chars.astype(np.uint8)
    level = length.astype(np.int64) - 1
    in_code = np.arange(MAX_LEVEL) < level[:, None]
    digits = chars[:, 1:] - np.uint8(ord("0"))  # non-digits wrap to large values
    bad = (chars[:, 0] != ord(PREFIX)) | ((digits > 7) & in_code).any(axis=1)
    if bad.any():
        raise ValueError(f"code: {str(flat[bad][0])!r} is not a grid code")
    digits = (digits * in_code).astype(np.uint16)
    morton = digits[:, 0::4] << 9 | digits[:, 1::4] << 6 | digits[:, 2::4] << 3 | digits[:, 3::4]
    index = _UNSPREAD[morton]
    x = (((index >> 4) & 15) << _NIBBLE_SHIFTS).sum(axis=1)
    y = ((index >> 8) << _NIBBLE_SHIFTS).sum(axis=1)
    z = ((index & 15) << _NIBBLE_SHIFTS).sum(axis=1)
    return shape, x, y, z, level


# --- public API -------------------------------------------------------------------------


def encode(lon, lat, h, level):
    """Codes of the cells at `level` (scalar or per point) holding the points."""
    shape, (lon, lat, h, level) = _point_args(lon, lat, h, level)
    return _strings(_deg_int(lon), _deg_int(lat), _h_int(h), level).reshape(shape)[()]


def encode_int(lon, lat, h, level):
    """(hi, lo) uint64 Morton codes of the cells at `level`: see the module docstring."""
    shape, (lon, lat, h, level) = _point_args(lon, lat, h, level)
    keep = ~((np.int64(1) << (32 - level)) - 1)  # clear the bits below the level
    morton = _SPREAD[_chunks(_deg_int(lon) & keep, _deg_int(lat) & keep, _h_int(h) & keep)]
    hi = (morton[:, :4] << np.array([36, 24, 12, 0])).sum(axis=1)
    lo = (morton[:, 4:] << np.array([36, 24, 12, 0])).sum(axis=1)
    return hi.astype(np.uint64).reshape(shape)[()], lo.astype(np.uint64).reshape(shape)[()]


def _point_args(lon, lat, h, level):
    lon, lat, h = _lons("lon", lon), _lats("lat", lat), _heights("h", h)
    return _broadcast(lon=lon, lat=lat, h=h, level=_levels("level", level))


def decode(codes):
    """Bounds (lon_min, lat_min, h_min, lon_max, lat_max, h_max) of each code's cell; a
    point p is in the cell when min <= p < max on every axis."""
    shape, x, y, z, level = _parse(codes)
    units = 2.0 ** (32 - level)  # cell side in integer units
    lon_min, lat_min = (x - _EQUATOR) / _PER_DEGREE, (y - _EQUATOR) / _PER_DEGREE
    h_min = (z - _GROUND) / _PER_METRE
    bounds = (
        lon_min, lat_min, h_min,
        lon_min + units / _PER_DEGREE, lat_min + units / _PER_DEGREE, h_min + units / _PER_METRE,
    )
    return tuple(b.reshape(shape)[()] for b in bounds)


def parent(code: str) -> str:
    code = _code("code", code)
    if code == PREFIX:
        raise ValueError(f"code: {code!r} is the root cell and has no parent")
    return code[:-1]


def children(code: str) -> list[str]:
    """The 8 cells one level down, in Z order; together they tile the cell exactly."""
    code = _code("code", code)
    if len(code) - 1 == MAX_LEVEL:
        raise ValueError(f"code: {code!r} is at MAX_LEVEL {MAX_LEVEL} and has no children")
    return [code + digit for digit in "01234567"]


def neighbours(code: str) -> list[str]:
    """The same-level cells sharing a face, edge or corner, in Z order: 26 inside the
    domain. There are fewer at its edges (lon ±180, lat ±90, H_MIN, H_MAX), since only cells
    holding encodable points count. Among such cells the relation is symmetric."""
    code = _code("code", code)
    _, x, y, z, level = _parse(code)
    level = int(level[0])
    if level == 0:
        return []
    shift = 32 - level
    cells = (np.stack([x, y, z], axis=1) >> shift) + _OFFSETS
    lo = np.array([_LON_RANGE[0], _LAT_RANGE[0], 0]) >> shift
    hi = np.array([_LON_RANGE[1], _LAT_RANGE[1], 2**32 - 1]) >> shift
    cells = cells[((cells >= lo) & (cells <= hi)).all(axis=1)] << shift
    found = _strings(cells[:, 0], cells[:, 1], cells[:, 2], np.full(len(cells), level))
    return np.sort(found).tolist()


def contains(ancestor_code: str, code: str) -> bool:
    """Whether `code`'s cell lies in `ancestor_code`'s cell (a cell contains itself)."""
    return _code("code", code).startswith(_code("ancestor_code", ancestor_code))


def _boxes(lon_min, lat_min, z_min, lon_max, lat_max, z_max):
    """Boxes as broadcast arrays, each bound checked and every min at most its max."""
    shape, (lon0, lat0, z0, lon1, lat1, z1) = _broadcast(
        lon_min=_lons("lon_min", lon_min), lat_min=_lats("lat_min", lat_min),
        z_min=_heights("z_min", z_min), lon_max=_lons("lon_max", lon_max),
        lat_max=_lats("lat_max", lat_max), z_max=_heights("z_max", z_max),
    )
    _ordered("lon_min", lon0, "lon_max", lon1)
    _ordered("lat_min", lat0, "lat_max", lat1)
    _ordered("z_min", z0, "z_max", z1)
    return shape, (lon0, lat0, z0, lon1, lat1, z1)


def adaptive_codes(lon_min, lat_min, z_min, lon_max, lat_max, z_max, *, max_level=MAX_LEVEL):
    """Per box, the smallest cell (deepest level, at most max_level) holding the closed box.
    On each axis the deepest common level is the number of leading bits the box's min and
    max corners share. The box's level is the least of the three."""
    top = int(_levels("max_level", max_level, scalar=True))
    shape, (lon0, lat0, z0, lon1, lat1, z1) = _boxes(lon_min, lat_min, z_min, lon_max, lat_max, z_max)
    x0, y0, h0 = _deg_int(lon0), _deg_int(lat0), _h_int(z0)
    differing = np.bitwise_or.reduce([x0 ^ _deg_int(lon1), y0 ^ _deg_int(lat1), h0 ^ _h_int(z1)])
    common = 32 - _bit_length(differing)  # the axis that differs earliest decides
    return _strings(x0, y0, h0, np.minimum(common, top)).reshape(shape)[()]


def horizontal_cells(lon, lat, level):
    """(column, row) integer indices of the cells at `level` (scalar or per point) holding
    the points on the lon/lat plane: the code's longitude and latitude bits, without height.
    The same cell at a coarser level j is (column, row) >> (level - j), so these indices form
    a quadtree whose prefixes mean containment, as the codes do."""
    shape, (lon, lat, level) = _broadcast(lon=_lons("lon", lon), lat=_lats("lat", lat),
                                          level=_levels("level", level))
    shift = 32 - level
    return tuple((_deg_int(a) >> shift).reshape(shape)[()] for a in (lon, lat))


def horizontal_bounds(column, row, level):
    """(lon_min, lat_min, lon_max, lat_max) of the cells that horizontal_cells names; a point
    is in a cell when min <= p < max."""
    shape, (column, row, level) = _broadcast(column=np.asarray(column, np.int64), row=np.asarray(row, np.int64),
                                             level=_levels("level", level))
    size = (2.0 ** (32 - level)) / _PER_DEGREE
    lon_min = (column * 2.0 ** (32 - level) - _EQUATOR) / _PER_DEGREE
    lat_min = (row * 2.0 ** (32 - level) - _EQUATOR) / _PER_DEGREE
    return tuple(b.reshape(shape)[()] for b in (lon_min, lat_min, lon_min + size, lat_min + size))


def prism_codes(column, row, level, z_min, z_max):
    """Per horizontal cell (column, row at `level`) and height range [z_min, z_max), the
    smallest 3D cell holding the cell's whole footprint across that range: the code of a
    location generalized to a cell and a height band. Its level is at most `level`, lower
    where the range crosses a height boundary of the grid."""
    shape, (column, row, level, z0, z1) = _broadcast(
        column=np.asarray(column, np.int64), row=np.asarray(row, np.int64), level=_levels("level", level),
        z_min=_heights("z_min", z_min), z_max=_heights("z_max", z_max),
    )
    _ordered("z_min", z0, "z_max", z1)
    shift = 32 - level
    x0, y0 = column << shift, row << shift
    x1, y1 = ((column + 1) << shift) - 1, ((row + 1) << shift) - 1
    h0 = _h_int(z0)
    h1 = np.maximum(h0, _h_int(z1) - 1)  # z_max is open: a range ending on a boundary stays below it
    differing = np.bitwise_or.reduce([x0 ^ x1, y0 ^ y1, h0 ^ h1])
    common = np.minimum(32 - _bit_length(differing), level)
    return _strings(x0, y0, h0, common).reshape(shape)[()]


def box_cells(lon_min, lat_min, z_min, lon_max, lat_max, z_max, level, *, max_cells=10_000_000):
    """The distinct cells at `level` that any of the closed boxes touches, in Z order: a
    coarse index of where a corpus lies. Per box, the cells are the integer ranges between
    its corners on each axis. Raises ValueError before building more than max_cells."""
    level = int(_levels("level", level, scalar=True))
    _, (lon0, lat0, z0, lon1, lat1, z1) = _boxes(lon_min, lat_min, z_min, lon_max, lat_max, z_max)
    shift = 32 - level
    lo = np.stack([_deg_int(lon0), _deg_int(lat0), _h_int(z0)]) >> shift
    span = (np.stack([_deg_int(lon1), _deg_int(lat1), _h_int(z1)]) >> shift) - lo + 1
    # Boxes usually fall in one cell: dedupe their corners first so the ranges stay small.
    lo = np.unique(np.concatenate([lo, span]).T, axis=0)
    lo, span = lo[:, :3].T, lo[:, 3:].T
    counts = span.prod(axis=0)
    if counts.sum() > max_cells:
        raise ValueError(f"level: the boxes touch more than {max_cells} cells at level {level}")
    box = np.repeat(np.arange(counts.size), counts)
    t = np.arange(box.size) - np.repeat(np.cumsum(counts) - counts, counts)
    dz = t % span[2][box]
    t //= span[2][box]
    dy = t % span[1][box]
    dx = t // span[1][box]
    cells = np.unique(np.stack([lo[0][box] + dx, lo[1][box] + dy, lo[2][box] + dz], axis=1), axis=0) << shift
    return np.sort(_strings(cells[:, 0], cells[:, 1], cells[:, 2], np.full(len(cells), level)))


def cover_polygon(polygon, level, *, z_min=0.0, z_max=0.0, max_cells=10_000_000) -> list[str]:
    """The cells at `level` whose closed footprint intersects the polygon (lon/lat), for each
    height cell from z_min's to z_max's, in Z order. Every point of the polygon lies in a
    returned cell. Cells are found by descending the quadtree from the polygon's bounding
    cell: a cell the polygon covers is expanded without further tests, and only cells on the
    boundary are split. Raises ValueError before building more than max_cells codes."""
    if not isinstance(polygon, Polygon | MultiPolygon) or polygon.is_empty:
        raise ValueError("polygon: must be a non-empty shapely Polygon or MultiPolygon")
    if not polygon.is_valid:
        raise ValueError(f"polygon: is not valid ({shapely.is_valid_reason(polygon)})")
    lon0, lat0, lon1, lat1 = polygon.bounds
    _lons("polygon", [lon0, lon1])
    _lats("polygon", [lat0, lat1])
    level = int(_levels("level", level, scalar=True))
    z0, z1 = _heights("z_min", z_min), _heights("z_max", z_max)
    if z0.ndim or z1.ndim:
        raise ValueError("z_min, z_max: must be single heights")
    _ordered("z_min", z0.reshape(1), "z_max", z1.reshape(1))
    shift = 32 - level
    heights = np.arange(_h_int(z0) >> shift, (_h_int(z1) >> shift) + 1)

    x0, x1, y0, y1 = (int(_deg_int(v)) for v in (lon0, lon1, lat0, lat1))
    k = min(level, 32 - (x0 ^ x1).bit_length(), 32 - (y0 ^ y1).bit_length())
    ix, iy = np.array([x0 >> (32 - k)]), np.array([y0 >> (32 - k)])
    shapely.prepare(polygon)  # in place; only speeds up later predicates
    found_x, found_y, found = [], [], 0

    def check(more):
        if (found + more) * len(heights) > max_cells:
            raise ValueError(f"level: covering at level {level} needs more than {max_cells} cells")

    while True:
        ix, iy, footprints = _intersecting(polygon, ix, iy, k)
        if k == level:
            break
        inside = shapely.covers(polygon, footprints)
        side = 1 << (level - k)
        check(int(inside.sum()) * side * side + int((~inside).sum()))
        if inside.any():
            sub = np.arange(side)
            xs, ys = np.broadcast_arrays(
                ix[inside, None, None] * side + sub[:, None], iy[inside, None, None] * side + sub
            )
            found_x.append(xs.ravel())
            found_y.append(ys.ravel())
            found += xs.size
        ix = (2 * ix[~inside, None] + np.array([0, 1, 0, 1])).ravel()
        iy = (2 * iy[~inside, None] + np.array([0, 0, 1, 1])).ravel()
        k += 1
    check(len(ix))
    fx, fy = np.concatenate([*found_x, ix]), np.concatenate([*found_y, iy])
    x, z = np.meshgrid(fx, heights, indexing="ij")
    y, _ = np.meshgrid(fy, heights, indexing="ij")
    x, y, z = (a.ravel() << shift for a in (x, y, z))
    return np.sort(_strings(x, y, z, np.full(x.size, level))).tolist()


def _intersecting(polygon, ix, iy, k):
    """The cells (lon index, lat index at level k) whose closed footprint meets the polygon."""
    size = 2.0 ** (32 - k)
    lon_lo = (ix * size - _EQUATOR) / _PER_DEGREE
    lat_lo = (iy * size - _EQUATOR) / _PER_DEGREE
    step = size / _PER_DEGREE
    footprints = shapely.box(lon_lo, lat_lo, lon_lo + step, lat_lo + step)
    hit = shapely.intersects(polygon, footprints)
    return ix[hit], iy[hit], footprints[hit]
