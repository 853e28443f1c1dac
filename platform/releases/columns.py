"""What each released column derives from, and the columns the pipeline recomputes so that
none of them derives from the true (unshifted) geometry.

A column computed from the true geometry republishes the true position: a grid code of the
unshifted footprint puts each unit in a cell of its true place, and an attacker who fits the
shift's published model (mode, offset bound, wavelength, origin: all in the report) to those
cells undoes the shift to under a metre for most units. The true area of a unit, set beside the
area of its shifted footprint, gives the smooth field's local area change at every unit (its
divergence), a constraint on the field that nothing else in a release hands out. So the pipeline
derives these columns from what it releases, and ``tests/releases/attacks/test_columns.py``
attacks every code and number column of a release to show that none locates a unit better than
the released geometry does.

Released columns, for the default policy (``releases.pipeline.ReleaseSpec``):

=====================  =====================================================================
column                 derives from
=====================  =====================================================================
geometry               the true footprint or line, shifted (keyed), then quantized to the
                       release grid and simplified; aggregates dissolve or box their shifted
                       members
grid_code              **recomputed** from the released geometry's bounding box and the
                       released z_min/z_max (:func:`grid_codes`), never finer than a cell of
                       the release precision; at level of detail "grid", the cell of the
                       shifted members that the aggregate stands for
area_m2                **recomputed**: the area of the shifted footprint (before rounding to
                       the release grid), then generalized like any quasi-identifier (10 m²
                       bins by default); null for lines (:func:`footprint_areas_m2`)
z_min, z_max           the true heights, coarsened to ``height_step_m`` / ``depth_step_m``
                       (declassify); vertical only: they say nothing of the horizontal shift,
                       but they do say the floor (height as a quasi-identifier is issue 14's
                       generalization work, not this module's)
unit_id, building_id   keyed HMAC pseudonyms of the corpus ids (a new key per release)
floor, build_year,     corpus attributes, generalized by the policy (bands, bins, top codes)
household_size
district,              the corpus's administrative names: where the unit truly is, at the
neighbourhood          scale of a district or 街道 (hundreds of metres). Against a public map
                       of those boundaries they bound the shift near a boundary (to the
                       distance between the boundary and the nearest unit, about 8 m in the
                       generated district); they never place a unit within metres
room_use, notes,       corpus attributes with no geometry in them (notes scrubbed of PII)
material, diameter_mm,
monthly_rent,
sensitive_category
unit_count             members of an aggregate (level of detail floor, building, grid)
aggregate unit_id      building pseudonym / floor band (floor level), building pseudonym
                       (building level), shifted grid cell / kind (grid level)
=====================  =====================================================================

Not protected: an attribute that correlates with a unit's true size (rent grows with area)
carries, summed over many units, a faint trace of the smooth field's area change (the cell mode
is rigid and leaves none); a field fitted to that trace did not beat the released geometry in
our trials, and the landmark fit of the attack suite gains nothing from ``monthly_rent``.

Plain Python (numpy, shapely, pyarrow); no Django.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from corpora import grid

from .shift import CellRigidShift, ShiftMode, shift_geometries
from .writers import quadrilaterals

AREA = "area_m2"
GRID_CODE = "grid_code"

_CGCS2000_A = 6378137.0
_CGCS2000_E2 = (2 - 1 / 298.257222101) / 298.257222101

# The longest degree on the CGCS2000 ellipsoid (a degree of latitude at the poles), so that
# one grid step is never longer than the precision on the ground.
# (Written as the fingerprint's grid always was: the same number, to the last bit.)
_FLATTENING = 1 / 298.257222101
_LONGEST_DEGREE_M = math.radians(_CGCS2000_A / math.sqrt(1 - _FLATTENING * (2 - _FLATTENING)))


def grid_step_deg(precision_m: float) -> float:
    """The release grid's step in degrees (both axes) for a precision of ``precision_m``."""
    if not (isinstance(precision_m, numbers.Real) and math.isfinite(precision_m) and precision_m > 0):
        raise ValueError(f"precision_m must be a positive number of metres, not {precision_m!r}")
    return precision_m / _LONGEST_DEGREE_M


def metres_per_degree(latitude):
    """Metres in a degree of longitude and of latitude at latitude (a number or an array),
    on the CGCS2000 ellipsoid."""
    phi = np.radians(latitude)
    w2 = 1 - _CGCS2000_E2 * np.sin(phi) ** 2
    per_degree_x = np.radians(_CGCS2000_A * np.cos(phi) / np.sqrt(w2))
    per_degree_y = np.radians(_CGCS2000_A * (1 - _CGCS2000_E2) / w2**1.5)
    if np.ndim(latitude) == 0:
        return float(per_degree_x), float(per_degree_y)
    return per_degree_x, per_degree_y


def max_code_level(precision_m: float) -> int:
    """The deepest grid level whose cells are no smaller than the release grid's step (the
    fingerprint's step, at most precision_m on the ground): a code never says more about a
    unit's place than its released coordinates do. Without quantization, any level."""
    if not precision_m:
        return grid.MAX_LEVEL
    # A level-L cell spans 2 ** (9 - L) degrees on either horizontal axis.
    return int(min(grid.MAX_LEVEL, max(0, math.floor(9 - math.log2(grid_step_deg(precision_m))))))


def grid_codes(bounds: np.ndarray, z_min, z_max, *, precision_m: float) -> pa.Array:
    """The grid code of each released unit: the smallest cell holding its released bounding
    box ((n, 4) lon/lat) and released height range, at most at max_code_level. Rows with
    no bounds (NaN) get null."""
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
    z_min, z_max = np.asarray(z_min, dtype=np.float64), np.asarray(z_max, dtype=np.float64)
    known = np.isfinite(bounds).all(axis=1) & np.isfinite(z_min) & np.isfinite(z_max)
    codes = np.full(len(bounds), None, dtype=object)
    if known.any():
        b = bounds[known]
        low, high = np.minimum(z_min[known], z_max[known]), np.maximum(z_min[known], z_max[known])
        codes[known] = grid.adaptive_codes(
            b[:, 0], b[:, 1], low, b[:, 2], b[:, 3], high, max_level=max_code_level(precision_m)
        )
    return pa.array(codes, pa.string())


def footprint_areas_m2(wkb: pa.Array | pa.ChunkedArray, mode: ShiftMode | None) -> np.ndarray:
    """Area in square metres of each footprint after the shift (NaN for lines and points).

    Stacked rooms share one footprint, so each distinct WKB value is shifted and measured
    once. Quadrilaterals, the common room, are shifted and measured in numpy (shoelace on
    their corners); other shapes through shapely. Metres are those of the ellipsoid at the
    unit's own latitude."""
    wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    encoded = pc.dictionary_encode(wkb)
    distinct = encoded.dictionary
    areas = np.full(len(distinct), np.nan)
    is_quad, corners = quadrilaterals(distinct)
    if len(corners):
        x, y = corners[..., 0].ravel(), corners[..., 1].ravel()
        if mode is not None:
            cell = None
            if isinstance(mode, CellRigidShift):  # a rigid move: any vertex's cell gives the same area
                cell = np.repeat(mode.cell_of(corners[:, 0, 0], corners[:, 0, 1]), 5, axis=0)
            x, y = mode.apply(x, y, cell=cell)
        x, y = x.reshape(-1, 5), y.reshape(-1, 5)
        twice = np.abs((x[:, :-1] * y[:, 1:] - x[:, 1:] * y[:, :-1]).sum(axis=1))
        mx, my = metres_per_degree((y.min(axis=1) + y.max(axis=1)) / 2)
        areas[is_quad] = twice / 2 * mx * my
    rows = np.flatnonzero(~is_quad)
    if len(rows):
        geoms = shapely.from_wkb(distinct.take(pa.array(rows)).to_numpy(zero_copy_only=False))
        if mode is not None:
            geoms = shift_geometries(geoms, mode)
        polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
        bounds = shapely.bounds(geoms)
        mx, my = metres_per_degree(np.nan_to_num((bounds[:, 1] + bounds[:, 3]) / 2))
        areas[rows] = np.where(polygonal, shapely.area(geoms) * mx * my, np.nan)
    return areas[encoded.indices.to_numpy(zero_copy_only=False)]


def with_released_area(table: pa.Table, mode: ShiftMode | None) -> pa.Table:
    """The table with area_m2, where it has one, replaced by the area of the shifted
    footprint; rows without an area, and lines, keep or get null."""
    if AREA not in table.column_names or table.num_rows == 0:
        return table
    column = table.column(AREA)
    areas = footprint_areas_m2(table.column("geometry"), mode)
    missing = np.isnan(areas) | pc.is_null(column).to_numpy(zero_copy_only=False)
    values = pa.array(np.where(missing, 0.0, areas), mask=missing).cast(column.type)
    return table.set_column(table.schema.get_field_index(AREA), table.schema.field(AREA), values)
