"""Release step 4, lightweight (轻量化): level of detail, coordinate quantization,
topology-preserving simplification and attribute pruning, each measured in the report.

Plain Python on pyarrow Tables, vectorised over whole arrays. Tolerances and the
quantization grid are given in metres and converted with the ellipsoid's metres per degree
at the data's central latitude: across a city the scale changes by well under 1%.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from shapely.errors import GEOSException

from releases.columns import GRID_CODE, grid_codes, metres_per_degree
from releases.declassify import known_fields, number_field, strings_field
from releases.columns import grid_step_deg
from releases.topology import COVERAGE, shared_coordinates, simplify_between
from releases.writers import quadrilateral_wkb, quadrilaterals

LEVELS_OF_DETAIL = ("room", "floor", "building", "grid")
# grid_code is recomputed from the released geometry (releases.columns), never the corpus's.
ALWAYS_KEPT = ("unit_id", "kind", "geometry", "z_min", "z_max", "grid_code")
UNIT_COUNT = "unit_count"  # added by every aggregating level: how many units a feature stands for
ADDITIVE = frozenset({"area_m2", "household_size"})  # a group's total means something; other numbers average
GROUP_KEYS = {"floor": ("building_id", "floor"), "building": ("building_id",)}


@dataclass(frozen=True)
class LightweightPolicy:
    """How far a release is lightened.

    level_of_detail: "room" keeps units; "floor" and "building" dissolve rooms into one
    feature per floor or building; "grid" aggregates each kind per grid cell, the cell being
    the first grid_level characters of grid_code (a code's prefix is its containing cell),
    or a lon/lat bin of 512 / 2**grid_level degrees where a unit has no grid code.
    precision_m 0 and simplify_tolerance_m 0 switch those steps off; keep_attributes None
    keeps every column.
    """

    simplify_tolerance_m: float = 0.5
    level_of_detail: str = "room"
    grid_level: int = 18
    precision_m: float = 1.0
    keep_attributes: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("simplify_tolerance_m", "precision_m"):
            object.__setattr__(self, name, number_field(name, getattr(self, name)))
        if self.level_of_detail not in LEVELS_OF_DETAIL:
            raise ValueError(
                f"policy field 'level_of_detail' must be one of {list(LEVELS_OF_DETAIL)}, "
                f"got {self.level_of_detail!r}"
            )
        if (
            isinstance(self.grid_level, bool)
            or not isinstance(self.grid_level, int)
            or not 1 <= self.grid_level <= 32
        ):
            raise ValueError(
                f"policy field 'grid_level' must be an integer from 1 to 32, got {self.grid_level!r}"
            )
        if self.keep_attributes is not None:
            object.__setattr__(
                self, "keep_attributes", strings_field("keep_attributes", self.keep_attributes)
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; from_dict(p.to_dict()) == p."""
        data = dataclasses.asdict(self)
        if self.keep_attributes is not None:
            data["keep_attributes"] = list(self.keep_attributes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LightweightPolicy:
        return cls(**known_fields(cls, data))


def lightweight(
    table: pa.Table, policy: LightweightPolicy, *, recode: bool = True
) -> tuple[pa.Table, dict[str, Any]]:
    """The lightened table and a report: features, vertices and WKB bytes before and after,
    what each step did, and how many geometries are valid at the end.

    A ``_coverage`` column (releases.topology), where the table has one, says which units
    form a coverage: simplification never removes a vertex that units of one coverage share.
    grid_code, where the table has one, is recomputed from the released geometry, unless
    ``recode`` is False (the caller set the cells already: an attack aggregating true geometry
    into the cells the release has)."""
    keys = GROUP_KEYS.get(policy.level_of_detail, ())
    missing = sorted((set(keys) | set(policy.keep_attributes or ())) - set(table.column_names))
    if missing:
        raise ValueError(f"the table lacks columns {missing} that the lightweight policy needs")
    kept = [
        name for name in table.column_names
        if name != COVERAGE and (policy.keep_attributes is None or name in ALWAYS_KEPT or name in policy.keep_attributes)
    ]
    report: dict[str, Any] = {
        "level_of_detail": policy.level_of_detail,
        "features": {"before": table.num_rows},
        "wkb_bytes": {"before": _wkb_bytes(table.column("geometry"))},
    }
    working = table.select([name for name in table.column_names if name in kept or name in keys or name == COVERAGE])
    coded = recode and GRID_CODE in working.column_names
    if policy.level_of_detail == "grid" and coded:
        # Grid cells of the shifted members (the table holds shifted geometry), never the corpus's.
        bounds = shapely.bounds(shapely.from_wkb(working.column("geometry").to_numpy(zero_copy_only=False)))
        working = with_grid_codes(working, bounds, policy)
    if policy.level_of_detail != "room":
        working, report["aggregation"] = _aggregate(working, policy)
        kept = [*kept, UNIT_COUNT]

    coverage = (working.column(COVERAGE).to_numpy(zero_copy_only=False) if COVERAGE in working.column_names
                else np.full(working.num_rows, -1, dtype=np.int64))
    wkb, present, valid, bounds, done = _lighten(working.column("geometry"), policy, coverage)
    field = working.schema.field("geometry")
    working = working.set_column(working.schema.get_field_index("geometry"), field, wkb)
    if coded and policy.level_of_detail != "grid":
        working = with_grid_codes(working, bounds, policy)
    if not present.all():  # a unit smaller than the grid collapses
        working, valid = working.filter(pa.array(present)), valid[present]
    released = working.select(kept)

    vertices_before = done.pop("vertices_in")
    if "aggregation" in report:  # count the members, not the features that replaced them
        vertices = report["aggregation"].pop("vertices")
        vertices_before += vertices["members"] - vertices["aggregates"]
    report["vertices"] = {"before": vertices_before, "after": done.pop("vertices_out")}
    report["features"].update(after=released.num_rows, collapsed=int((~present).sum()))
    report["wkb_bytes"]["after"] = _wkb_bytes(released.column("geometry"))
    report.update(done)
    report["topology"] = {
        "valid": int(valid.sum()),
        "invalid": int((~valid).sum()),
        "passed": bool(valid.all()),
    }
    report["attributes"] = {
        "kept": released.column_names,
        "dropped": sorted(set(table.column_names) - set(released.column_names) - {COVERAGE}),
    }
    return released, report


def with_grid_codes(table: pa.Table, bounds: np.ndarray, policy: LightweightPolicy) -> pa.Table:
    """table with grid_code recomputed from the (n, 4) bounds of its released geometry."""
    codes = grid_codes(
        bounds, table.column("z_min").to_numpy(zero_copy_only=False), table.column("z_max").to_numpy(zero_copy_only=False),
        precision_m=policy.precision_m,
    )
    index = table.schema.get_field_index(GRID_CODE)
    return table.set_column(index, table.schema.field(index), codes.cast(table.schema.field(index).type))


def _lighten(
    wkb: pa.ChunkedArray, policy: LightweightPolicy, coverage: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Quantize, then simplify, WKB values. Returns the new WKB, which values are non-empty
    (a unit smaller than the grid collapses), which are valid, their (n, 4) bounds, and what
    was done.

    Rooms stacked floor on floor share one footprint: each distinct WKB value is lightened
    once. Quadrilaterals, the common room, are handled in numpy on their coordinates: a
    strictly convex one is valid, and one whose every corner lies farther than the tolerance
    from the line through its neighbours loses nothing to Douglas–Peucker. Everything else
    goes through GEOS (_lighten_geometries), at about a microsecond a geometry per step."""
    wkb = wkb.combine_chunks()
    encoded = pc.dictionary_encode(wkb)
    rows = encoded.indices.to_numpy(zero_copy_only=False)
    distinct = encoded.dictionary
    copies = np.bincount(rows, minlength=len(distinct))
    fixed = shared_coordinates(wkb, coverage)
    out, present, valid, bounds, done = _lighten_distinct(distinct, policy, fixed)
    per_copy = {name: int((done.pop(name) * copies).sum()) for name in ("vertices_in", "vertices_out")}
    return out.take(pa.array(rows)), present[rows], valid[rows], bounds[rows], {**per_copy, **done}


def _lighten_distinct(
    wkb: pa.Array, policy: LightweightPolicy, fixed: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """_lighten on distinct values; vertices_in and vertices_out are per value."""
    is_quad, corners = quadrilaterals(wkb)
    quad_rows, rows = np.flatnonzero(is_quad), np.flatnonzero(~is_quad)
    geometries = shapely.from_wkb(wkb.take(pa.array(rows)).to_numpy(zero_copy_only=False))
    vertices_in = np.full(len(wkb), 5)
    vertices_in[rows] = shapely.get_num_coordinates(geometries)

    latitude = _central_latitude(corners, geometries)
    metres_x, metres_y = metres_per_degree(latitude)
    # The fingerprint's grid: one step of it is at most precision_m on the ground along either
    # axis, and per-recipient packages moved by whole steps stay exactly on it.
    grid = np.full(2, grid_step_deg(policy.precision_m)) if policy.precision_m else None
    # From the longer metre-per-degree axis, so the tolerance is not exceeded in metres along either axis.
    tolerance = policy.simplify_tolerance_m / max(metres_x, metres_y)

    if grid is not None:
        corners = _snapped(corners, grid)
    convex, far = _quadrilateral_shape(corners, tolerance)
    plain = convex & (far | (tolerance == 0))
    if not plain.all():  # the other quadrilaterals join the GEOS path, in row order
        rows = np.concatenate([rows, quad_rows[~plain]])
        more = shapely.from_wkb(wkb.take(pa.array(quad_rows[~plain])).to_numpy(zero_copy_only=False))
        order = np.argsort(rows, kind="stable")
        rows, geometries = rows[order], np.concatenate([geometries, more])[order]
    geometries, valid_rows, done = _lighten_geometries(geometries, grid, tolerance, fixed)

    out = pc.replace_with_mask(wkb, _mask(len(wkb), quad_rows[plain]), quadrilateral_wkb(corners[plain]))
    out = pc.replace_with_mask(out, _mask(len(wkb), rows), pa.array(shapely.to_wkb(geometries), pa.binary()))
    present = np.ones(len(wkb), dtype=bool)
    present[rows] = ~shapely.is_empty(geometries)
    valid = np.ones(len(wkb), dtype=bool)
    valid[rows] = valid_rows
    bounds = np.empty((len(wkb), 4))
    bounds[quad_rows[plain]] = np.c_[corners[plain].min(axis=1), corners[plain].max(axis=1)]
    bounds[rows] = shapely.bounds(geometries)
    vertices_out = np.full(len(wkb), 5)
    vertices_out[rows] = shapely.get_num_coordinates(geometries)
    return (
        out,
        present,
        valid,
        bounds,
        {
            "vertices_in": vertices_in,
            "vertices_out": vertices_out,
            "simplify": {
                "tolerance_m": policy.simplify_tolerance_m,
                "tolerance_deg": tolerance,
                "geos_simplified": done["simplified"],
                "kept_shared_vertices": done["between_shared"],
            },
            "quantization": {
                "precision_m": policy.precision_m,
                "latitude": latitude,
                "grid_deg": None if grid is None else grid.tolist(),
                "resnapped": done["resnapped"],
            },
        },
    )


def _lighten_geometries(
    geometries: np.ndarray, grid: np.ndarray | None, tolerance: float, fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Quantize to grid (degrees of lon, lat), then simplify with Douglas–Peucker and
    preserve_topology, which keeps each geometry valid; simplifying second keeps the output
    on the grid, since it only drops vertices. Rounding can make a ring touch itself or
    collapse: those few are snapped again by GEOS's precision reducer on the same grid,
    which returns valid (perhaps empty) output; an input that was invalid already is left
    invalid, to be counted, not silently repaired. Rounding can also repeat a vertex, which
    simplification drops; without it, the repeats are removed.

    A geometry with a vertex in ``fixed`` (lon, lat pairs, as complex numbers, that units of
    one coverage share) keeps every such vertex: only the stretches between them are
    simplified (releases.topology.simplify_between), so shared edges stay shared."""
    unquantized, geometries = geometries, geometries.copy()
    coords, index = shapely.get_coordinates(geometries, return_index=True)
    pinned = np.isin(coords[:, 0] + 1j * coords[:, 1], fixed) if len(fixed) else np.zeros(len(coords), bool)
    redo = np.zeros(len(geometries), dtype=bool)
    if grid is not None:
        coords = _snapped(coords, grid)
        shapely.set_coordinates(geometries, coords)
        redo = ~shapely.is_valid(geometries)
        redo[redo] = shapely.is_valid(unquantized[redo])
        in_cells = shapely.transform(unquantized[redo], lambda c: c / grid)
        geometries[redo] = shapely.transform(shapely.set_precision(in_cells, 1.0), lambda c: c * grid)
    # A resnapped geometry's vertices no longer match coords; it is left as resnapped.
    shared = np.bincount(index[pinned], minlength=len(geometries)) > 0
    shared &= ~redo
    between = np.flatnonzero(shared)
    plain = np.flatnonzero(~shared)
    if tolerance:
        geometries[plain] = shapely.simplify(geometries[plain], tolerance, preserve_topology=True)
        if len(between):
            keep = np.isin(index, between)
            geometries[between] = simplify_between(geometries[between], pinned[keep], tolerance)
    elif grid is not None:
        repeats = np.zeros(len(geometries), dtype=bool)
        repeats[index[1:][np.all(coords[1:] == coords[:-1], axis=1) & (index[1:] == index[:-1])]] = True
        geometries[repeats] = shapely.remove_repeated_points(geometries[repeats])
    valid = shapely.is_valid(geometries)
    return (
        geometries,
        valid,
        {"resnapped": int(redo.sum()), "simplified": len(plain) if tolerance else 0,
         "between_shared": len(between) if tolerance else 0},
    )


def _quadrilateral_shape(rings: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """For (m, 5, 2) closed rings: which are strictly convex, and which lie farther than
    tolerance from every line through two other corners. Douglas–Peucker (GEOS's pass over
    a ring's start point included) drops a corner only within the tolerance of a segment
    between two corners it keeps, so it leaves the latter unchanged.

    With e_i the edge from corner i and t_i = e_(i-1) x e_i the turn at corner i, the six
    distances are |t_i| over |e_(i-1)|, |e_i| and |e_(i-1) + e_i|: from corner i + 1 to the
    line of e_(i-1), from corner i - 1 to the line of e_i, and from corner i to the chord
    of its neighbours."""
    edges = np.diff(rings, axis=1)
    out_x, out_y = edges[..., 0], edges[..., 1]
    in_x, in_y = np.roll(out_x, 1, axis=1), np.roll(out_y, 1, axis=1)
    turn = in_x * out_y - in_y * out_x
    convex = (turn > 0).all(axis=1) | (turn < 0).all(axis=1)
    out_length = np.hypot(out_x, out_y)
    longest = np.maximum(
        np.maximum(out_length, np.roll(out_length, 1, axis=1)), np.hypot(in_x + out_x, in_y + out_y)
    )
    far = (np.abs(turn) > tolerance * longest).all(axis=1)
    return convex, far


def _aggregate(table: pa.Table, policy: LightweightPolicy) -> tuple[pa.Table, dict[str, Any]]:
    """Replace member units by one feature per group, keeping the others as they are.

    Floors and buildings dissolve their rooms (see _dissolve; one collection per group,
    dissolved in one call); grid cells take their members' bounding box, since a cell's
    statistics, not its members' outlines, are what that level releases. Aggregates carry
    unit_count, z range, sums of ADDITIVE columns, means of other floats, and any other
    value that all members share (null where they differ)."""
    level = policy.level_of_detail
    if level == "grid":
        members = np.ones(table.num_rows, dtype=bool)
    else:
        members = pc.equal(table.column("kind"), "room").to_numpy(zero_copy_only=False)
        for key in GROUP_KEYS[level]:
            members &= table.column(key).is_valid().to_numpy(zero_copy_only=False)
    geometries = shapely.from_wkb(
        table.column("geometry").filter(pa.array(members)).to_numpy(zero_copy_only=False)
    )

    report: dict[str, Any] = {}
    grouping = table
    keys = list(GROUP_KEYS.get(level, ()))
    if level == "grid":
        codes = table.column(GRID_CODE) if GRID_CODE in table.column_names else pa.chunked_array(
            [pa.nulls(table.num_rows, pa.string())])
        cells, report = _cells(codes, geometries, policy.grid_level)
        grouping = table.append_column("_cell", cells)
        keys = ["_cell", "kind"]
    part = grouping.filter(pa.array(members)).append_column("_row", pa.array(np.arange(len(geometries))))
    for name, values in zip(("_xmin", "_ymin", "_xmax", "_ymax"), shapely.bounds(geometries).T, strict=True):
        part = part.append_column(name, pa.array(values))
    specs = [
        ("_row", "list"),
        ("_row", "count"),
        ("_xmin", "min"),
        ("_ymin", "min"),
        ("_xmax", "max"),
        ("_ymax", "max"),
    ]
    if level == "grid" and GRID_CODE in table.column_names:
        specs.append((GRID_CODE, "count"))
    for field in table.schema:
        if field.name not in keys and field.name not in ("unit_id", "kind", "geometry", GRID_CODE, COVERAGE):
            specs += [(field.name, how) for how in _reductions(field)]
    grouped = part.group_by(keys, use_threads=False).aggregate(specs)  # groups in order of first member

    if level == "grid":
        bounds = (
            grouped.column(name).to_numpy() for name in ("_xmin_min", "_ymin_min", "_xmax_max", "_ymax_max")
        )
        shapes = shapely.box(*bounds)
    else:
        rows = grouped.column("_row_list").combine_chunks()
        member_rows = rows.values.to_numpy()
        group = np.repeat(np.arange(len(rows)), np.diff(rows.offsets.to_numpy()))
        if level == "floor":
            shapes = _dissolve(geometries[member_rows], group)
        else:  # a building's floors overlap: dissolve each floor, then unite the floors
            floor = (
                table.column("floor").filter(pa.array(members)).to_numpy(zero_copy_only=False)[member_rows]
            )
            floors, floor_group = np.unique(
                np.c_[group, np.nan_to_num(floor.astype(float), nan=-1e9)], axis=0, return_inverse=True
            )
            order = np.argsort(floor_group, kind="stable")
            outlines = _dissolve(geometries[member_rows][order], floor_group[order])
            per_building = shapely.geometrycollections(outlines, indices=floors[:, 0].astype(np.int64))
            shapes = shapely.union_all(per_building[:, None], axis=1)

    others = table.filter(pa.array(~members))
    others = others.append_column(UNIT_COUNT, pa.array(np.ones(others.num_rows, dtype=np.int32)))
    columns = {UNIT_COUNT: grouped.column("_row_count").cast(pa.int32())}
    for field in table.schema:
        name = field.name
        if name in keys:
            values = grouped.column(name)
        elif name == "unit_id":
            values = _aggregate_ids(grouped, level)
        elif name == "kind":
            values = pa.array(np.full(grouped.num_rows, level, dtype=object), pa.string())
        elif name == "geometry":
            values = pa.array(shapely.to_wkb(shapes), pa.binary())
        elif name == GRID_CODE and level == "grid":  # the (shifted) cell the aggregate stands for
            coded = pc.greater(grouped.column("grid_code_count"), 0)
            values = pc.if_else(coded, grouped.column("_cell"), pa.scalar(None, pa.string()))
        elif name == GRID_CODE:  # recomputed from the dissolved outline once it is lightened
            values = pa.nulls(grouped.num_rows, field.type)
        elif name == COVERAGE:  # an outline dissolves its floor's coverage; it shares nothing
            values = pa.array(np.full(grouped.num_rows, -1, dtype=np.int64))
        else:
            values = _reduced(grouped, field)
        columns[name] = values.cast(field.type)
    aggregates = pa.Table.from_arrays([columns[name] for name in others.column_names], schema=others.schema)
    report.update(
        members=int(members.sum()),
        aggregates=grouped.num_rows,
        passed_through=others.num_rows,
        vertices={
            "members": int(shapely.get_num_coordinates(geometries).sum()),
            "aggregates": int(shapely.get_num_coordinates(shapes).sum()),
        },
    )
    return pa.concat_tables([others, aggregates]), report


def _dissolve(geometries: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One outline per group, for group numbers 0, 1, ... given in increasing order.

    Rooms of a floor normally form a coverage (no overlaps; neighbours share walls vertex
    for vertex), which GEOS dissolves by cancelling shared edges, several times faster than
    a general union. A group whose coverage union is invalid, or smaller or larger than its
    members' total area (rooms overlapping or nested), is unioned in full instead."""
    per_group = shapely.geometrycollections(geometries, indices=group)
    try:
        outlines = shapely.coverage_union_all(per_group[:, None], axis=1)
    except GEOSException:  # input GEOS cannot treat as a coverage at all
        outlines = np.full(len(per_group), None, dtype=object)
    members_area = np.bincount(group, weights=shapely.area(geometries), minlength=len(per_group))
    wrong = ~shapely.is_valid(outlines) | ~np.isclose(shapely.area(outlines), members_area, rtol=1e-9, atol=0)
    outlines[wrong] = shapely.union_all(per_group[wrong, None], axis=1)
    return outlines


def _reductions(field: pa.Field) -> tuple[str, ...]:
    if field.name == "z_min":
        return ("min",)
    if field.name == "z_max":
        return ("max",)
    if field.name in ADDITIVE:
        return ("sum",)
    if pa.types.is_floating(field.type):
        return ("mean",)
    return ("min", "max")  # equal min and max: a value all members share


def _reduced(grouped: pa.Table, field: pa.Field) -> pa.ChunkedArray:
    how = _reductions(field)
    if len(how) == 1:
        return grouped.column(f"{field.name}_{how[0]}")
    low, high = grouped.column(f"{field.name}_min"), grouped.column(f"{field.name}_max")
    return pc.if_else(pc.equal(low, high), low, pa.scalar(None, low.type))


def _aggregate_ids(grouped: pa.Table, level: str) -> pa.ChunkedArray:
    if level == "floor":
        return pc.binary_join_element_wise(
            grouped.column("building_id"), grouped.column("floor").cast(pa.string()), "/F"
        )
    if level == "building":
        return grouped.column("building_id")
    return pc.binary_join_element_wise(grouped.column("_cell"), grouped.column("kind"), "/")


def _cells(
    codes: pa.ChunkedArray, geometries: np.ndarray, level: int
) -> tuple[pa.ChunkedArray, dict[str, Any]]:
    """A grid_code prefix per unit; a unit without a code gets a lon/lat bin key instead,
    which no grid code can equal."""
    prefixes = pc.utf8_slice_codeunits(codes, 0, level)
    binned = codes.null_count
    report: dict[str, Any] = {"grid_level": level, "units_binned": binned}
    if not binned:
        return prefixes, report
    size = 512.0 / 2**level
    xmin, ymin, xmax, ymax = shapely.bounds(geometries).T
    column = pa.array(np.floor((xmin + xmax) / 2 / size).astype(np.int64)).cast(pa.string())
    row = pa.array(np.floor((ymin + ymax) / 2 / size).astype(np.int64)).cast(pa.string())
    report.update(
        bin_size_deg=size, note="units without grid_code were aggregated by lon/lat bins, not grid cells"
    )
    return pc.coalesce(prefixes, pc.binary_join_element_wise("bin", column, row, ":")), report


def _snapped(coords: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """coords rounded to the nearest multiple of grid, axis by axis."""
    snapped = coords / grid
    np.rint(snapped, out=snapped)
    snapped *= grid
    return snapped


def _central_latitude(corners: np.ndarray, geometries: np.ndarray) -> float:
    ys = [corners[..., 1].min(), corners[..., 1].max()] if len(corners) else []
    if len(geometries):
        _, ymin, _, ymax = shapely.total_bounds(geometries)
        ys += [ymin, ymax]
    ys = [y for y in ys if np.isfinite(y)]
    return float((min(ys) + max(ys)) / 2) if ys else 0.0


def _mask(length: int, rows: np.ndarray) -> pa.Array:
    mask = np.zeros(length, dtype=bool)
    mask[rows] = True
    return pa.array(mask)


def _wkb_bytes(wkb: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(pc.binary_length(wkb)).as_py() or 0)
