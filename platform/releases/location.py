"""Location and height as quasi-identifiers (release step 1, with desensitize).

Anyone knows a target's building and floor. A release that carried exact room geometry (or
a height fine enough to tell floors apart) beside per-room attributes would give each room
an equivalence class of one, whatever k the declared quasi-identifiers reach. The policy's
`location` field (desensitize.LOCATION_SHAPES) chooses how that is prevented:

cell
    Each unit keeps its row and attributes, and its location is generalized on the 3D grid
    (corpora.grid): its geometry becomes a grid cell, its z range that of its height band
    in the cell, its grid code the cell across that range. The class is (kind, height band,
    declared quasi-identifiers, cell), the height band being the generalized floor. Cells
    are adaptive, fine where units are dense and coarse where they are sparse (see
    cell_classes), and k and l hold over the whole class. Join keys other than unit_id
    (building_id) are refused: they would link a room back to its building.
aggregate
    Exact geometry, but only at floor or building level of detail (or grid aggregates): the
    rooms' attributes are summed or averaged per feature, and a feature stands for at least
    k rooms. A room that cannot be aggregated (no building or floor) is withheld.
exact
    Each unit's exact geometry with its attributes. The policy refuses it when it declares a
    sensitive column: it is for units that say nothing about people, such as pipes.

The classes are found over the whole corpus in the pipeline's first pass (equivalence_classes);
the second pass writes each unit's class location (Classes.relocate).

Plain Python (numpy, pyarrow, shapely); no Django.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from corpora import grid

from .desensitize import DesensitizePolicy, _codes, _group_ids, generalize, k_anonymize
from .writers import quadrilaterals

BAND = "floor"  # the column whose generalized value is a unit's height band
LON, LAT = "_lon", "_lat"  # a unit's representative point, carried through the first pass
ROOM_KINDS = ("room",)  # the unit kinds that floor and building levels of detail aggregate
GROUP_KEYS = {"floor": ("building_id", BAND), "building": ("building_id",)}
MERGE_RATIO = 8  # a short cell keeps its smallest satisfying child when that child has at most
MERGE_UNITS = 8  # MERGE_RATIO times its own units or MERGE_UNITS * k units; else its units move up


class PolicyUnmet(ValueError):
    """The policy's k and l cannot hold for enough of the corpus; the message says what to coarsen."""


@dataclass(frozen=True)
class CellClasses:
    """Per unit: its class (-1: suppressed) and why it was suppressed (0 kept, 1 k, 2 + i
    sensitive column i); per class: the cell (level, column, row), size, fewest distinct
    sensitive values over the sensitive columns, and z extent."""

    unit_class: np.ndarray
    reason: np.ndarray
    level: np.ndarray
    column: np.ndarray
    row: np.ndarray
    size: np.ndarray
    distinct: np.ndarray
    z_min: np.ndarray
    z_max: np.ndarray

    @property
    def classes(self) -> int:
        return len(self.size)


def cell_classes(
    lon: np.ndarray,
    lat: np.ndarray,
    strata: list,
    sensitive: list,
    z_min: np.ndarray,
    z_max: np.ndarray,
    *,
    k: int,
    l: int,
    coarsest: int,
    finest: int,
    bands: list | None = None,
) -> CellClasses:
    """Adaptive grid cells for units at (lon, lat) (their representative points), per
    stratum (the distinct tuples of the `strata` columns; null is a value), such that every
    class holds at least k units and l distinct values of each `sensitive` column. A class's
    z range is that of every unit of its height band (the tuples of the `bands` columns, by
    default its stratum) in its cell, so that heights say no more than band and cell.

    Cells are those of the quadtree of the grid's lon/lat bits, for all strata at once:
    units sorted by stratum and Z order make every cell of every level a contiguous run. A
    unit starts in the deepest cell on its path that satisfies k and l. Then, bottom up, the
    units a cell keeps for itself (those in no satisfying child, and any moved up to it)
    must together satisfy k and l; where they fall short, the smallest satisfying child
    joins them (it satisfies both alone, so they then do) or, when that child is large
    beside them (MERGE_RATIO, MERGE_UNITS), they move up to the parent cell: stragglers near
    a dense building go up rather than coarsen the building. At the coarsest level a child
    always joins; with no satisfying child the cell does not split. A unit whose coarsest
    cell fails k or l is suppressed.

    Every class therefore holds at least k units and l values, and its cell holds each
    member's point. An attacker who knows a target's stratum and position finds its class
    among the rows whose cell holds that position (it is the deepest of them), so at least
    k candidates remain, whatever else they know of the algorithm."""
    n = len(lon)
    stratum = _group_ids(strata, n)[0] if strata else np.zeros(n, np.int64)
    values = [_codes(column) for column in sensitive]
    column, row = (np.atleast_1d(a) for a in grid.horizontal_cells(
        np.asarray(lon, np.float64), np.asarray(lat, np.float64), finest))
    morton = _morton(column, row)
    order = np.lexsort((morton, stratum))
    s, m = stratum[order], morton[order]
    codes = [(c[order], card) for c, card in values]

    # Every cell of every level, and whether it satisfies k and l (a cell that does, its
    # parent does too). A unit starts in the deepest satisfying cell on its path.
    nodes, oks = {}, {}
    level = np.full(n, -1, np.int64)  # in sorted order
    reason = np.zeros(n, np.int8)
    for depth in range(coarsest, finest + 1):
        nodes[depth] = _runs(s, m >> (2 * (finest - depth)))
        ok, why = _satisfies(nodes[depth], codes, k, l)
        oks[depth] = ok
        inside = ok[nodes[depth]]
        level[inside] = depth
        if depth == coarsest:
            reason[~inside] = why[nodes[depth]][~inside]
    # Bottom up, the units a cell keeps for itself (those not in a satisfying child, and those
    # moved up to it) must satisfy k and l together. Where they do not, either the smallest
    # satisfying child stays with them (then they do, since that child alone does), or, when
    # they are few beside that child, they move up to the parent cell, and at the coarsest
    # level, which has no parent, they always keep a child; with no satisfying child the cell
    # does not split at all.
    for depth in range(finest, coarsest - 1, -1):
        here = level == depth
        if not here.any():
            continue
        node = nodes[depth]
        n_nodes = int(node[-1]) + 1
        residual = np.bincount(node[here], minlength=n_nodes)
        short = (residual > 0) & ~_satisfies_where(node, here, n_nodes, codes, k, l)
        if not short.any():
            continue
        merge = np.zeros(n_nodes, bool)
        if depth < finest:
            child = nodes[depth + 1]
            below = level > depth
            smallest, size = _smallest_child(child, node, oks[depth + 1], below, n_nodes)
            merge = short & (smallest >= 0)
            if depth > coarsest:
                merge &= size <= np.maximum(MERGE_RATIO * residual, MERGE_UNITS * k)
            joins = np.zeros(int(child[-1]) + 1, bool)
            joins[smallest[merge]] = True
            level[joins[child] & below] = depth
        rest = short & ~merge
        if depth > coarsest:
            level[here & rest[node]] = depth - 1
        else:
            level[rest[node] & (level >= 0)] = depth
    level = level.astype(np.int8)

    kept = np.flatnonzero(level >= 0)
    shift = 2 * (finest - level[kept].astype(np.int64))
    classes, n_classes = _dense(s[kept], ((m[kept] >> shift) << 5) | level[kept])
    unit_class = np.full(n, -1, np.int64)
    unit_class[order[kept]] = classes
    reasons = np.empty(n, np.int8)
    reasons[order] = reason
    member = np.empty(n_classes, np.int64)
    member[classes] = kept  # any member: they share the class's cell
    class_level = level[member].astype(np.int64)
    band = _group_ids(bands, n)[0] if bands else stratum
    z_lo, z_hi = _band_extents(band, morton, np.asarray(z_min, np.float64), np.asarray(z_max, np.float64),
                               band[order][member], m[member], class_level, finest)
    distinct = np.zeros(n_classes, np.int64)
    for i, (c, card) in enumerate(codes):
        counts = _distinct(classes, n_classes, c[kept], card)
        distinct = counts if i == 0 else np.minimum(distinct, counts)
    return CellClasses(
        unit_class=unit_class,
        reason=reasons,
        level=class_level.astype(np.int8),
        column=column[order][member] >> (finest - class_level),
        row=row[order][member] >> (finest - class_level),
        size=np.bincount(classes, minlength=n_classes),
        distinct=distinct,
        z_min=z_lo,
        z_max=z_hi,
    )


def _smallest_child(child, node, ok, below, n_nodes):
    """Per node, its satisfying child with the fewest units still below the node's level
    (-1 if none), and that number."""
    n_children = int(child[-1]) + 1
    child_node = np.zeros(n_children, np.int64)
    child_node[child] = node
    size = np.bincount(child[below], minlength=n_children)
    candidates = np.flatnonzero(ok & (size > 0))
    candidates = candidates[np.lexsort((candidates, size[candidates], child_node[candidates]))]
    first = np.ones(len(candidates), bool)
    first[1:] = child_node[candidates][1:] != child_node[candidates][:-1]
    smallest = np.full(n_nodes, -1, np.int64)
    smallest[child_node[candidates[first]]] = candidates[first]
    return smallest, np.where(smallest >= 0, size[np.maximum(smallest, 0)], 0)


def _band_extents(band, morton, z_min, z_max, class_band, class_morton, class_level, finest):
    """Per class, the z extent of all units of its band whose point lies in its cell."""
    order = np.lexsort((morton, band))
    b, m = band[order], morton[order]
    lo, hi = z_min[order], z_max[order]
    z_lo = np.full(len(class_level), np.inf)
    z_hi = np.full(len(class_level), -np.inf)
    for level in np.unique(class_level):
        shift = 2 * (finest - int(level))
        if b.max(initial=0) >= 2 ** (62 - 2 * int(level)):
            raise ValueError(f"too many height bands ({b.max() + 1}) to key cells of level {level}")
        key = (b << (2 * int(level))) | (m >> shift)  # sorted, as (band, morton) are
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        at = np.flatnonzero(class_level == level)
        run = np.searchsorted(key[starts], (class_band[at] << (2 * int(level))) | (class_morton[at] >> shift))
        z_lo[at] = np.minimum.reduceat(lo, starts)[run]
        z_hi[at] = np.maximum.reduceat(hi, starts)[run]
    return z_lo, z_hi


@dataclass
class Classes:
    """The first pass's verdict on every unit, and (location "cell") each class's location."""

    keep: np.ndarray  # per corpus row
    k_anonymity: dict[str, Any]
    location: dict[str, Any]
    row_class: np.ndarray | None = None  # per corpus row, its class; -1 for rows not released
    geometry: pa.Array | None = None  # per class: the cell's lon/lat box, WKB
    grid_code: pa.Array | None = None  # per class: the 3D cell across the class's z extent
    z_min: pa.Array | None = None
    z_max: pa.Array | None = None
    withheld_aggregates: int = field(default=0)

    def relocate(self, rows: np.ndarray, table: pa.Table) -> pa.Table:
        """Released rows (corpus row numbers `rows`) with their class's location in place of
        their own: geometry, z range and grid code (location "cell"; others pass as they are)."""
        if self.row_class is None:
            return table
        which = pa.array(self.row_class[rows])
        for name, values in (("geometry", self.geometry), ("z_min", self.z_min), ("z_max", self.z_max),
                             ("grid_code", self.grid_code)):
            if name in table.column_names:
                field = table.schema.field(name)
                table = table.set_column(table.schema.get_field_index(name), field,
                                         values.take(which).cast(field.type))
        return table


def needed_columns(policy: DesensitizePolicy, names: list[str], level_of_detail: str) -> list[str]:
    """The corpus columns the first pass reads for the policy's location shape."""
    wanted = ["kind", "geometry", "z_min", "z_max", *policy.quasi_identifiers, *policy.sensitive]
    if policy.location == "cell" and BAND in names:
        wanted.append(BAND)
    if policy.location == "aggregate":
        keys = ["grid_code"] if level_of_detail == "grid" else GROUP_KEYS[level_of_detail]
        wanted += [c for c in keys if c in names]
    return list(dict.fromkeys(wanted))


def class_columns(table: pa.Table, policy: DesensitizePolicy, level_of_detail: str, grid_level: int) -> dict:
    """A declassified batch's columns for the first pass: quasi-identifiers and the height
    band generalized as they will be released, sensitive values, kind and, by shape, the
    representative point and z range (cell) or the aggregation keys (aggregate)."""
    columns = {}
    names = [*policy.quasi_identifiers]
    if policy.location == "cell" and BAND in table.column_names:
        names.append(BAND)
    if policy.location == "aggregate" and level_of_detail in GROUP_KEYS:
        names += [c for c in GROUP_KEYS[level_of_detail] if c in table.column_names]
    for name in dict.fromkeys(names):
        rule = policy.generalize.get(name)
        columns[name] = generalize(table.column(name), rule) if rule else table.column(name)
    for name in policy.sensitive:
        columns[name] = table.column(name)
    columns["kind"] = table.column("kind")
    if policy.location == "cell":
        lon, lat = _centres(table.column("geometry"))
        columns[LON] = pa.array(lon)
        columns[LAT] = pa.array(lat)
        columns["z_min"] = table.column("z_min")
        columns["z_max"] = table.column("z_max")
    if policy.location == "aggregate" and level_of_detail == "grid":
        columns["_cell"] = pc.utf8_slice_codeunits(table.column("grid_code"), 0, grid_level)
    return columns


def _centres(wkb: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The centre of each geometry's bounding box: read from the WKB of quadrilaterals (most
    rooms), through shapely for the rest."""
    is_quad, corners = quadrilaterals(wkb)
    lon, lat = np.empty(len(is_quad)), np.empty(len(is_quad))
    lon[is_quad] = (corners[..., 0].min(axis=1) + corners[..., 0].max(axis=1)) / 2
    lat[is_quad] = (corners[..., 1].min(axis=1) + corners[..., 1].max(axis=1)) / 2
    if not is_quad.all():
        rest = np.flatnonzero(~is_quad)
        wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
        bounds = shapely.bounds(shapely.from_wkb(wkb.take(pa.array(rest)).to_numpy(zero_copy_only=False)))
        lon[rest] = (bounds[:, 0] + bounds[:, 2]) / 2
        lat[rest] = (bounds[:, 1] + bounds[:, 3]) / 2
    return lon, lat


def equivalence_classes(units: pa.Table, rows: np.ndarray, total: int, policy: DesensitizePolicy, *,
                        level_of_detail: str, latitude: float | None = None) -> Classes:
    """Which of the first pass's units (corpus rows `rows`) are released and where: k and l
    over the declared quasi-identifiers, plus (cell) the height band and adaptive grid cell
    or (aggregate) the size of the feature each room joins. Raises PolicyUnmet when more than
    the policy's max_suppressed of the units that carry sensitive values would be withheld."""
    qi, sensitive = list(policy.quasi_identifiers), list(policy.sensitive)
    keep = np.zeros(total, dtype=bool)
    counted = _counted(units, sensitive)
    if policy.location == "cell":
        strata = _strata(units, qi)
        coarsest, finest = policy.cell_levels
        result = cell_classes(
            units.column(LON).to_numpy(), units.column(LAT).to_numpy(), [units.column(c) for c in strata],
            [units.column(c) for c in sensitive], units.column("z_min").to_numpy(),
            units.column("z_max").to_numpy(), k=policy.k, l=policy.l, coarsest=coarsest, finest=finest,
            bands=[units.column(c) for c in strata if c in ("kind", BAND)],
        )
        kept = result.unit_class >= 0
        _refuse_if_unmet(policy, counted, ~kept, lambda names: _cell_suppressed(units, names, policy),
                         strata, f"even at grid level {coarsest}")
        keep[rows[kept]] = True
        row_class = np.full(total, -1, np.int64)
        row_class[rows] = result.unit_class
        bounds = grid.horizontal_bounds(result.column, result.row, result.level)
        return Classes(
            keep=keep,
            k_anonymity=_cell_report(result, policy),
            location={
                "shape": "cell",
                "class_over": [*(f"{c} band" if c == BAND else c for c in strata), "grid cell"],
                "cell_levels": list(policy.cell_levels),
                "levels": _levels(result, latitude),
                "released_as": "each unit's geometry is its class's grid cell, and its z range that of its "
                               "height band in the cell",
            },
            row_class=row_class,
            geometry=pa.array(shapely.to_wkb(shapely.box(*bounds)), pa.binary()),
            grid_code=pa.array(grid.prism_codes(result.column, result.row, result.level, result.z_min,
                                                np.maximum(result.z_max, result.z_min)), pa.string()),
            z_min=pa.array(result.z_min),
            z_max=pa.array(result.z_max),
        )
    suppressed, result = _declared(units, qi, policy)
    kanon = dataclasses.asdict(result)
    location = {"shape": policy.location, "class_over": list(qi)}
    if policy.location == "aggregate":
        small = _small_aggregates(units, ~suppressed, policy.k, level_of_detail)
        if small.any():
            reason = f"room in a {level_of_detail} feature of fewer than k={policy.k} rooms, or without its keys"
            kanon["reasons"][reason] = int(small.sum())
            kanon["suppressed"] += int(small.sum())
            suppressed |= small
        location.update(level_of_detail=level_of_detail,
                        released_as=f"rooms only as {level_of_detail} features of at least k={policy.k} rooms, "
                                    "their attributes summed or averaged")
    else:
        location["released_as"] = "exact geometry: the policy declares no sensitive column"
    _refuse_if_unmet(policy, counted, suppressed, lambda names: _declared(units, names, policy)[0], qi, "")
    keep[rows[~suppressed]] = True
    return Classes(keep=keep, k_anonymity=kanon, location=location)


def withhold_small_aggregates(table: pa.Table, policy: DesensitizePolicy,
                              level_of_detail: str) -> tuple[pa.Table, int]:
    """Location "aggregate": a feature standing for fewer than k rooms (a floor split across
    two batches) is withheld, so no released attribute describes fewer than k rooms."""
    if policy.location != "aggregate" or "unit_count" not in table.column_names:
        return table, 0
    small = pc.less(table.column("unit_count"), policy.k)
    if level_of_detail != "grid":
        small = pc.and_(small, pc.equal(table.column("kind"), level_of_detail))
    small = pc.fill_null(small, False)
    count = pc.sum(small).as_py() or 0
    return (table.filter(pc.invert(small)), count) if count else (table, 0)


def _strata(units: pa.Table, qi: list[str]) -> list[str]:
    """Kind, the height band and the declared quasi-identifiers: everything about a released
    row that the attacker may know of their target besides its position."""
    return list(dict.fromkeys(["kind", *([BAND] if BAND in units.column_names else []), *qi]))


def _counted(units: pa.Table, sensitive: list[str]) -> np.ndarray:
    """The units whose suppression counts against max_suppressed: those with every sensitive
    value present (the units the attributes are about), or all units without sensitive columns."""
    counted = np.ones(units.num_rows, bool)
    for name in sensitive:
        counted &= units.column(name).is_valid().to_numpy(zero_copy_only=False)
    return counted


def _refuse_if_unmet(policy, counted, suppressed, suppressed_without, strata, where) -> None:
    total = int(counted.sum())
    if total == 0:
        return
    share = float((suppressed & counted).sum()) / total
    if share <= policy.max_suppressed:
        return
    options = []
    for name in [c for c in strata if c != "kind"]:
        without = float((suppressed_without([c for c in strata if c != name]) & counted).sum()) / total
        options.append((without, name))
    advice = []
    if options:
        without, name = min(options)
        if name == BAND:
            advice.append(f"coarsen the floor bands (one band would leave {without:.0%} suppressed)")
        else:
            advice.append(f"coarsen or drop quasi-identifier {name!r} "
                          f"(without it {without:.0%} would be suppressed)")
        if BAND in strata and name != BAND:
            advice.append("coarsen the floor bands")
    advice.append(f"lower k={policy.k}" + (f" or l={policy.l}" if policy.sensitive else ""))
    if policy.location == "cell":
        advice.append("allow coarser cells (a lower first value of cell_levels)")
    raise PolicyUnmet(
        f"k={policy.k}" + (f" and l={policy.l}" if policy.sensitive else "")
        + f" cannot hold for {share:.0%} of the {total} units"
        + (f" with {', '.join(policy.sensitive)}" if policy.sensitive else "")
        + (f" {where}" if where else "")
        + f", more than max_suppressed {policy.max_suppressed:.0%}: " + ", ".join(advice)
    )


def _cell_suppressed(units: pa.Table, strata: list[str], policy: DesensitizePolicy) -> np.ndarray:
    """Which units the coarsest cells alone would suppress, over the given strata."""
    coarsest = policy.cell_levels[0]
    result = cell_classes(
        units.column(LON).to_numpy(), units.column(LAT).to_numpy(), [units.column(c) for c in strata],
        [units.column(c) for c in policy.sensitive], units.column("z_min").to_numpy(),
        units.column("z_max").to_numpy(), k=policy.k, l=policy.l, coarsest=coarsest, finest=coarsest,
    )
    return result.unit_class < 0


def _declared(units: pa.Table, names: list[str], policy: DesensitizePolicy):
    """Which units k and l over the declared quasi-identifiers alone suppress, and the result."""
    marked = units.append_column("_i", pa.array(np.arange(units.num_rows)))
    released, result = k_anonymize(marked, names, policy.k, sensitive=list(policy.sensitive), l=policy.l)
    suppressed = np.ones(units.num_rows, bool)
    suppressed[released.column("_i").to_numpy()] = False
    return suppressed, result


def _small_aggregates(units: pa.Table, alive: np.ndarray, k: int, level_of_detail: str) -> np.ndarray:
    """Units that lightweight would aggregate into a feature of fewer than k of them, or
    would pass through with their exact geometry for want of the keys to group them by."""
    if level_of_detail == "grid":
        members = alive.copy()
        keys = [units.column("_cell"), units.column("kind")]
    else:
        members = alive & pc.is_in(units.column("kind"), pa.array(ROOM_KINDS)).to_numpy(zero_copy_only=False)
        keys = [units.column(c) for c in GROUP_KEYS[level_of_detail]]
    keyless = np.zeros(units.num_rows, bool)
    for column in keys:
        keyless |= members & ~column.is_valid().to_numpy(zero_copy_only=False)
    members &= ~keyless
    small = keyless
    if members.any():
        index = np.flatnonzero(members)
        groups, n_groups = _group_ids([column.take(pa.array(index)) for column in keys], len(index))
        size = np.bincount(groups, minlength=n_groups)
        small[index[size[groups] < k]] = True
    return small


def _cell_report(result: CellClasses, policy: DesensitizePolicy) -> dict[str, Any]:
    """The k-anonymity figures of a cell generalization, as desensitize.KAnonResult has them."""
    coarsest = policy.cell_levels[0]
    counts = np.bincount(result.reason, minlength=2 + len(policy.sensitive))
    reasons = {}
    if counts[1]:
        reasons[f"equivalence class smaller than k={policy.k} even at grid level {coarsest}"] = int(counts[1])
    for i, name in enumerate(policy.sensitive):
        if counts[2 + i]:
            reasons[f"fewer than l={policy.l} distinct values of {name} even at grid level {coarsest}"] = int(
                counts[2 + i])
    released = result.classes > 0
    return {
        "k": policy.k,
        "l": policy.l,
        "k_reached": int(result.size.min()) if released else None,
        "l_reached": int(result.distinct.min()) if released and policy.sensitive else None,
        "suppressed": int((result.unit_class < 0).sum()),
        "reasons": reasons,
        "classes": result.classes,
    }


def _levels(result: CellClasses, latitude: float | None) -> dict[str, Any]:
    """Units released at each grid level, with the level's cell size in metres."""
    from .lightweight import metres_per_degree

    kept = result.unit_class[result.unit_class >= 0]
    levels, counts = np.unique(result.level[kept], return_counts=True)
    metres_x, metres_y = metres_per_degree(latitude if latitude is not None else 0.0)
    degrees = 512 / 2.0 ** levels
    return {
        str(int(level)): {"units": int(count), "cell_m": [round(size * metres_x), round(size * metres_y)]}
        for level, count, size in zip(levels, counts, degrees)
    }


def _morton(column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Z-order keys of cell indices below 2**31: a key shifted right by 2 bits is its parent's."""
    return _spread(column) | (_spread(row) << 1)


def _spread(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v.astype(np.int64)


def _dense(major: np.ndarray, minor: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids of the distinct (major, minor) pairs, and how many there are."""
    order = np.lexsort((minor, major))
    runs = _runs(major[order], minor[order])
    ids = np.empty(len(order), np.int64)
    ids[order] = runs
    return ids, int(runs[-1]) + 1 if len(runs) else 0


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Dense ids of the runs of equal keys in sorted arrays."""
    change = np.zeros(len(keys[0]), bool)
    if len(change):
        change[0] = True
        for key in keys:
            change[1:] |= key[1:] != key[:-1]
    return np.cumsum(change) - 1


def _satisfies(groups: np.ndarray, codes, k: int, l: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: whether it holds k members and l values of each sensitive column, and why
    not (1: k; 2 + i: sensitive column i)."""
    n_groups = int(groups[-1]) + 1 if len(groups) else 0
    size = np.bincount(groups, minlength=n_groups)
    ok = size >= k
    why = np.where(ok, 0, 1).astype(np.int8)
    for i, (c, _) in enumerate(codes):
        big = ok[groups]  # only groups with k members need their values counted
        lacking = ok & ~_at_least(groups[big], n_groups, c[big], l)
        why[lacking] = 2 + i
        ok &= ~lacking
    return ok, why


def _satisfies_where(groups: np.ndarray, members: np.ndarray, n_groups: int, codes, k: int,
                     l: int) -> np.ndarray:
    """_satisfies for the members of each group only."""
    ok = np.bincount(groups[members], minlength=n_groups) >= k
    for c, _ in codes:
        counted = members & ok[groups]
        ok &= _at_least(groups[counted], n_groups, c[counted], l)
    return ok


def _at_least(groups: np.ndarray, n_groups: int, codes: np.ndarray, l: int) -> np.ndarray:
    """Whether each group holds at least l distinct codes, for group ids that never decrease
    along the arrays (runs of the sorted units): l rounds, each finding in every group the
    first code unlike those found before, which costs less than sorting for a small l."""
    result = np.zeros(n_groups, bool)
    n = len(groups)
    if n == 0:
        return result
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    present = groups[starts]
    ends = np.r_[starts[1:], n]
    unlike = np.ones(n, bool)
    has = np.ones(len(starts), bool)
    position = np.arange(n)
    for _ in range(l):
        first = np.minimum.reduceat(np.where(unlike, position, n), starts)
        has &= first < ends
        if not has.any():
            break
        found = np.where(has, codes[np.minimum(first, n - 1)], -1)
        unlike &= codes != np.repeat(found, ends - starts)
    result[present] = has
    return result


def _distinct(groups: np.ndarray, n_groups: int, codes: np.ndarray, card: int) -> np.ndarray:
    """How many distinct codes each group holds."""
    pairs = np.sort(groups * card + codes)
    first = np.ones(len(pairs), bool)
    first[1:] = pairs[1:] != pairs[:-1]
    return np.bincount(pairs[first] // card, minlength=n_groups)


def location_policy(desensitize: dict, shape: str) -> dict:
    """A desensitize policy, as plain data, switched to a location shape with the join keys
    that shape implies: "cell" drops every join key but unit_id (a building's pseudonym would
    link its rooms back to it), "aggregate" pseudonymizes the building_id it groups rooms by."""
    data = copy.deepcopy(dict(desensitize))
    data["location"] = shape
    drop, pseudonymize = list(data.get("drop", [])), list(data.get("pseudonymize", []))
    if shape == "cell":
        keys = [c for c in pseudonymize if c != "unit_id"]
        data["pseudonymize"] = [c for c in pseudonymize if c == "unit_id"]
        data["drop"] = drop + [c for c in keys if c not in drop]
    elif shape == "aggregate":
        keys = [c for c in drop if c in {key for keys in GROUP_KEYS.values() for key in keys}]
        data["drop"] = [c for c in drop if c not in keys]
        data["pseudonymize"] = pseudonymize + [c for c in keys if c not in pseudonymize]
    return data


def with_location(spec, shape: str, level_of_detail: str):
    """A release spec (pipeline.ReleaseSpec) switched to another location shape and level of
    detail, everything else as it was; raises ValueError if the policy refuses it."""
    data = spec.to_dict()
    data["desensitize"] = location_policy(data["desensitize"], shape)
    data["lightweight"]["level_of_detail"] = level_of_detail
    return type(spec).from_dict(data)
