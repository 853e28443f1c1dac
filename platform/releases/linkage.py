"""Re-identification, measured on a release's own data: can the attacker of DESIGN.md find the
released row of a target they know?

The attacker has every released file, a true basemap of building footprints, and of each
target its building, its floor and its declared quasi-identifiers (they know the published
policy, so they generalize those as the release did). They keep the released rows that
could be the target's:

- location: the row's geometry overlaps the target's building footprint (a room inside
  it, a floor or building outline, or a grid cell over it). The shift is no obstacle:
  matching the basemap's shapes undoes any shape-preserving shift (the re-location figure
  shows how well), so the attack works in the true frame with the shift undone exactly, an
  upper bound on what such an attacker recovers;
- height: the released floor band is the target's, and the released z range holds the
  target's true one;
- declared quasi-identifiers: equal to the target's, generalized (a null released value, or
  an aggregate's sum or mean, rules nothing out);
- a grid cell whose part over the building is covered entirely by finer cells of rows with
  the same values cannot hold the target: a unit's class is the deepest of its values whose
  cell holds its position (releases.location.cell_classes).

The candidate set is the number of rooms the remaining rows stand for (one per row, an
aggregate's unit_count). A target is re-identified when that number is between 1 and k - 1.
A target that declassification or suppression withheld has no candidates, and is counted
as not in the release.

The targets are TARGETS rooms drawn from the corpus, deterministically from the release
key. The pipeline feeds the functions below batch by batch in its passes; an attack on the
written files feeds them the same way (tests/releases/attacks/test_linkage.py).

Plain Python (numpy, pyarrow, shapely); no Django.
"""
from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from corpora import grid

from .columns import with_released_area
from .desensitize import DesensitizePolicy, _group_ids, generalize
from .lightweight import metres_per_degree
from .shift import CellRigidShift, ShiftMode, shift_geometries

TARGETS = 1000
SHRINK_M = 0.5  # a footprint is shrunk this far, so that a cell merely touching it does not count
MATCH_TOLERANCE_M = 2.0  # how far a released cell may sit from where the shift puts the true cell
_WEIGHT, _AGGREGATE = "_weight", "_aggregate"
_TARGET_LABEL = b"miliao/linkage/targets/v1"


def sample_rows(room_rows: np.ndarray, key: bytes, n: int = TARGETS) -> np.ndarray:
    """n corpus rows drawn from room_rows without replacement, by a generator seeded from
    the release key (a different key draws different targets), in corpus order."""
    seed = int.from_bytes(hmac.new(key, _TARGET_LABEL, hashlib.sha256).digest()[:8], "big")
    room_rows = np.asarray(room_rows, np.int64)
    picked = np.random.default_rng(seed).choice(len(room_rows), min(n, len(room_rows)), replace=False)
    return np.sort(room_rows[picked])


def target_columns(policy: DesensitizePolicy, names: list[str]) -> list[str]:
    """The corpus columns that describe a target to the attacker."""
    wanted = ["kind", "building_id", "geometry", "z_min", "z_max", "floor", *policy.quasi_identifiers]
    return [name for name in dict.fromkeys(wanted) if name in names]


def pick_targets(start: int, table: pa.Table, rows: np.ndarray, columns: list[str],
                 mode: ShiftMode | None = None) -> pa.Table | None:
    """The targets among a corpus batch (rows start, start + 1, ...), with their row numbers.
    A target's area is what the release derives from its footprint shifted by ``mode``
    (columns.with_released_area): the attacker knows the shift (above) and the footprint."""
    lo, hi = np.searchsorted(rows, [start, start + table.num_rows])
    if lo == hi:
        return None
    picked = with_released_area(table.select(columns).take(pa.array(rows[lo:hi] - start)), mode)
    return picked.append_column("_row", pa.array(rows[lo:hi]))


def pick_buildings(table: pa.Table) -> pa.Table | None:
    """The building footprints of a corpus batch: the attacker's basemap."""
    if "building_id" not in table.column_names:
        return None
    buildings = table.filter(pc.equal(table.column("kind"), "building")).select(["building_id", "geometry"])
    return buildings if buildings.num_rows else None


def compress(table: pa.Table, policy: DesensitizePolicy) -> pa.Table:
    """A released batch reduced to what the attack reads: the distinct (geometry, kind, floor,
    z range, quasi-identifiers) of rows that stand for rooms, with the rooms they stand for."""
    is_room = pc.equal(table.column("kind"), "room")
    if "unit_count" in table.column_names:
        aggregate = pc.fill_null(pc.greater(table.column("unit_count"), 1), False)
        weight = pc.fill_null(table.column("unit_count"), 1).cast(pa.int64())
    else:
        aggregate = pa.array(np.zeros(table.num_rows, bool))
        weight = pa.array(np.ones(table.num_rows, np.int64))
    rooms = pc.or_(is_room, aggregate)
    keys = _keys(table.column_names, policy)
    part = table.select(keys).append_column(_AGGREGATE, aggregate).append_column(_WEIGHT, weight)
    return _grouped(part.filter(rooms))


@dataclass(frozen=True)
class Reidentification:
    """Per target: its corpus row and how many released rooms could be its own."""

    rows: np.ndarray
    candidates: np.ndarray
    k: int
    linked_on: list[str]

    def report(self) -> dict[str, Any]:
        found = self.candidates > 0
        reidentified = found & (self.candidates < self.k)
        targets = len(self.rows)
        sizes = self.candidates[found]
        return {
            "attacker": "every released file, a true basemap of building footprints (the shift undone), and "
                        "each target's building, floor and declared quasi-identifiers",
            "targets": targets,
            "with_candidates": int(found.sum()),
            "reidentified": int(reidentified.sum()),
            "share": float(reidentified.sum() / targets) if targets else 0.0,
            "k": self.k,
            "candidates": {"min": int(sizes.min()), "p50": float(np.median(sizes))} if sizes.size else None,
            "linked_on": self.linked_on,
            "note": "a target is re-identified when fewer than k released rooms could be its own; "
                    "a withheld target counts as not in the release",
        }


def reidentify(
    released: list[pa.Table],
    targets: list[pa.Table],
    buildings: list[pa.Table],
    policy: DesensitizePolicy,
    shift_mode: ShiftMode | None,
) -> Reidentification:
    """The attack over a release's compressed batches (compress), the targets (pick_targets)
    and the basemap (pick_buildings)."""
    target = pa.concat_tables(targets) if targets else None
    parts = [part for part in released if part.num_rows]
    linked_on = ["building"]
    if target is None or target.num_rows == 0:
        return Reidentification(np.zeros(0, np.int64), np.zeros(0, np.int64), policy.k, linked_on)
    rows = target.column("_row").to_numpy()
    if not parts:
        return Reidentification(rows, np.zeros(len(rows), np.int64), policy.k, linked_on)
    rows_out = _grouped(pa.concat_tables(parts))

    footprints = _footprints(target, buildings)
    latitude = float(np.mean(shapely.bounds(footprints)[:, [1, 3]]))
    metres_x, metres_y = metres_per_degree(latitude)
    inner = shapely.buffer(footprints, -SHRINK_M / max(metres_x, metres_y), join_style="mitre")
    inner = np.where(shapely.is_empty(inner), footprints, inner)

    # Where each distinct released geometry lies in the true frame: a grid cell, or the
    # geometry with the shift undone.
    encoded = pc.dictionary_encode(rows_out.column("geometry").combine_chunks())
    which = encoded.indices.to_numpy()
    geometries = shapely.from_wkb(encoded.dictionary.to_numpy(zero_copy_only=False))
    tolerance = MATCH_TOLERANCE_M / min(metres_x, metres_y)  # degrees
    located = _undo(geometries, shift_mode, tolerance)
    cell = _cells(geometries, policy, shift_mode, tolerance) if policy.location == "cell" else None
    is_cell = cell["level"] >= 0 if cell is not None else np.zeros(len(geometries), bool)
    if is_cell.any():
        located[is_cell] = shapely.box(*grid.horizontal_bounds(cell["column"][is_cell], cell["row"][is_cell],
                                                               cell["level"][is_cell]))
    if cell is not None:
        cell = {name: values[which] for name, values in cell.items()}
    located = located[which]

    # The target's values, generalized as the release was, against the rows'.
    names = rows_out.column_names
    matched = [name for name in _value_columns(names) if name in target.column_names]
    linked_on += (["z range"] if "z_min" in names and "z_max" in names else []) + matched
    released_codes, known_codes = {}, {}
    for name in matched:
        rule = policy.generalize.get(name)
        known = generalize(target.column(name), rule) if rule else target.column(name).combine_chunks()
        released_codes[name], known_codes[name] = _common_codes(rows_out.column(name), known)
    aggregate = rows_out.column(_AGGREGATE).to_numpy(zero_copy_only=False)
    # A row with a value missing (or an aggregate's) rules no target out by that value.
    open_row = aggregate | ~np.all([released_codes[name] >= 0 for name in matched], axis=0) if matched \
        else np.ones(rows_out.num_rows, bool)

    # Rows with every value given meet only the targets that share them (a join on the
    # values), and then their building; the others meet every building they overlap.
    pair_row, pair_target = [], []
    given = np.flatnonzero(~open_row)
    if given.size:
        rows_side = pa.table({**{n: released_codes[n][given] for n in matched}, "_r": given})
        targets_side = pa.table({**{n: known_codes[n] for n in matched}, "_t": np.arange(target.num_rows)})
        joined = targets_side.join(rows_side, keys=matched, join_type="inner", use_threads=False)
        r, t = joined.column("_r").to_numpy(), joined.column("_t").to_numpy()
        over = shapely.intersects(located[r], inner[t])
        pair_row.append(r[over])
        pair_target.append(t[over])
    loose = np.flatnonzero(open_row)
    if loose.size:
        t, r = shapely.STRtree(located[loose]).query(inner, predicate="intersects")
        r = loose[r]
        fit = np.ones(len(r), bool)
        for name in matched:
            value = released_codes[name][r]
            fit &= (value < 0) | aggregate[r] | (value == known_codes[name][t])
        pair_row.append(r[fit])
        pair_target.append(t[fit])
    pair_row, pair_target = np.concatenate(pair_row), np.concatenate(pair_target)
    if cell is not None:
        possible = _deepest_somewhere(pair_row, pair_target, rows_out, cell, footprints)
        pair_row, pair_target = pair_row[possible], pair_target[possible]
    if "z_min" in names and "z_max" in names:
        lo = rows_out.column("z_min").to_numpy(zero_copy_only=False)[pair_row]
        hi = rows_out.column("z_max").to_numpy(zero_copy_only=False)[pair_row]
        fit = (lo <= target.column("z_min").to_numpy()[pair_target] + 1e-6)
        fit &= (hi >= target.column("z_max").to_numpy()[pair_target] - 1e-6)
        pair_row, pair_target = pair_row[fit], pair_target[fit]
    weight = rows_out.column(_WEIGHT).to_numpy()
    candidates = np.bincount(pair_target, weights=weight[pair_row], minlength=len(rows)).astype(np.int64)
    return Reidentification(rows, candidates, policy.k, linked_on)


def _keys(names: list[str], policy: DesensitizePolicy) -> list[str]:
    wanted = ["geometry", "kind", "z_min", "z_max", "floor", *policy.quasi_identifiers]
    return [name for name in dict.fromkeys(wanted) if name in names]


def _value_columns(names: list[str]) -> list[str]:
    return [name for name in names if name not in ("geometry", "kind", "z_min", "z_max", _WEIGHT, _AGGREGATE)]


def _grouped(part: pa.Table) -> pa.Table:
    keys = [name for name in part.column_names if name != _WEIGHT]
    grouped = part.group_by(keys, use_threads=False).aggregate([(_WEIGHT, "sum")])
    return grouped.rename_columns([_WEIGHT if name == f"{_WEIGHT}_sum" else name
                                   for name in grouped.column_names])


def _footprints(target: pa.Table, buildings: list[pa.Table]) -> np.ndarray:
    """Each target's building footprint from the basemap; a target whose building is not on
    it is located by its own footprint (which only helps the attacker)."""
    own = shapely.from_wkb(target.column("geometry").to_numpy(zero_copy_only=False))
    basemap = [part for part in buildings if part is not None and part.num_rows]
    if not basemap or "building_id" not in target.column_names:
        return own
    table = pa.concat_tables(basemap)
    index = pc.index_in(target.column("building_id"), value_set=table.column("building_id"))
    index = index.to_numpy(zero_copy_only=False)
    on_map = ~np.isnan(index.astype(float)) if index.dtype.kind == "f" else np.ones(len(own), bool)
    index = np.nan_to_num(index.astype(float), nan=0).astype(np.int64)
    shapes = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return np.where(on_map, shapes[index], own)


def _common_codes(released: pa.ChunkedArray, known: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Codes of both columns' values in one dictionary; -1 for null."""
    released = released.combine_chunks() if isinstance(released, pa.ChunkedArray) else released
    known = known.cast(released.type)
    encoded = pc.dictionary_encode(pa.concat_arrays([released, known]))
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    return codes[: len(released)], codes[len(released):]


def _cells(released, policy: DesensitizePolicy, mode, tolerance: float) -> dict[str, np.ndarray]:
    """Which released geometries are grid cells of the policy's levels, and which: the level
    from the width, the cell from the centre with the shift undone; a cell is accepted when
    the shift puts it where the released box lies (under a per-cell rigid shift, each cell
    within reach is tried as the one the box moved with)."""
    coarsest, finest = policy.cell_levels
    xmin, ymin, xmax, ymax = shapely.bounds(released).T
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.rint(np.log2(512.0 / (xmax - xmin)))
    level = np.where(np.isfinite(level), level, -1).astype(np.int64)
    found = np.zeros(len(released), bool)
    column = np.zeros(len(released), np.int64)
    row = np.zeros(len(released), np.int64)
    lon, lat = (xmin + xmax) / 2, (ymin + ymax) / 2
    for guess in _move_cells(mode, lon, lat):
        todo = np.flatnonzero(~found & (level >= coarsest) & (level <= finest))
        if todo.size == 0:
            break
        x, y = _unshift_points(mode, lon[todo], lat[todo], cell=None if guess is None else guess[todo])
        c, r = grid.horizontal_cells(x, y, level[todo])
        expected = shapely.box(*grid.horizontal_bounds(c, r, level[todo]))
        if mode is not None:
            expected = shift_geometries(expected, mode)
        fits = np.abs(shapely.bounds(expected) - shapely.bounds(released[todo])).max(axis=1) <= tolerance
        column[todo[fits]], row[todo[fits]] = c[fits], r[fits]
        found[todo[fits]] = True
    return {"level": np.where(found, level, -1), "column": column, "row": row}


def _move_cells(mode, lon, lat):
    """The cells a per-cell rigid shift may have moved points now at (lon, lat) with, nearest
    first; for other modes a single None (the mode needs no cell)."""
    if not isinstance(mode, CellRigidShift):
        yield None
        return
    base = mode.cell_of(lon, lat)
    reach = int(math.ceil(mode.max_offset_m / mode.cell_m)) + 1
    for di, dj in sorted(((di, dj) for di in range(-reach, reach + 1) for dj in range(-reach, reach + 1)),
                         key=lambda o: abs(o[0]) + abs(o[1])):
        yield base + np.array([di, dj])


def _deepest_somewhere(pair_row, pair_target, rows_out: pa.Table, cell, footprints) -> np.ndarray:
    """Which (row, target) pairs survive what the attacker knows of the cell algorithm: a
    unit's class is the deepest class of its values whose cell holds its position
    (releases.location.cell_classes). So a row whose cell is a grid cell can be the target's
    only if some part of the building inside that cell lies in no finer cell of a row with
    the same values."""
    keep = np.ones(len(pair_row), bool)
    level = cell["level"][pair_row]
    if len(pair_row) == 0 or (level < 0).all():
        return keep
    values = [rows_out.column(name) for name in rows_out.column_names if name not in
              ("geometry", "z_min", "z_max", _WEIGHT)]
    stratum = _group_ids(values, rows_out.num_rows)[0][pair_row]
    group = _group_ids([pa.array(pair_target), pa.array(stratum)], len(pair_row))[0]
    # Every (coarser, finer) pair of cells of one target and one class value tuple.
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    count = sizes[group[order]]
    coarse = np.repeat(order, count)
    fine = order[starts.repeat(count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))]
    nested = (level[coarse] >= 0) & (level[fine] > level[coarse])
    coarse, fine = coarse[nested], fine[nested]
    if coarse.size == 0:
        return keep
    by_coarse = np.argsort(coarse, kind="stable")
    coarse, fine = coarse[by_coarse], fine[by_coarse]
    boxes = shapely.box(*grid.horizontal_bounds(cell["column"][pair_row], cell["row"][pair_row],
                                                np.maximum(level, 0)))
    checked = np.unique(coarse)
    covers = shapely.geometrycollections(boxes[fine], indices=np.searchsorted(checked, coarse))
    finer = shapely.union_all(covers[:, None], axis=1)
    part = shapely.intersection(footprints[pair_target[checked]], boxes[checked])
    left = shapely.area(shapely.difference(part, finer))
    keep[checked] = left > 1e-6 * np.maximum(shapely.area(part), 1e-30)
    return keep


def _undo(geometries: np.ndarray, mode: ShiftMode | None, tolerance: float) -> np.ndarray:
    """Released geometries moved back to the true frame, vertex by vertex, each checked by
    shifting it again. A per-cell rigid shift moved each geometry with the cell of its
    representative point, and near a cell's edge more than one cell could have sent it where
    it lies: the cells within reach are tried in turn until the check passes."""
    if mode is None or len(geometries) == 0:
        return geometries.copy()
    coords, index = shapely.get_coordinates(geometries, return_index=True)
    result = geometries.copy()
    if not isinstance(mode, CellRigidShift):
        x, y = _unshift_points(mode, coords[:, 0], coords[:, 1])
        return shapely.set_coordinates(result, np.column_stack([x, y]))
    rep = shapely.point_on_surface(geometries)
    todo = np.arange(len(geometries))
    for attempt, cells in enumerate(_move_cells(mode, shapely.get_x(rep), shapely.get_y(rep))):
        vertices = np.isin(index, todo)
        guess = cells[index[vertices]]
        x, y = _unshift_points(mode, coords[vertices, 0], coords[vertices, 1], cell=guess)
        undone = shapely.set_coordinates(geometries[todo].copy(), np.column_stack([x, y]))
        again = shift_geometries(undone, mode)
        fits = np.abs(shapely.bounds(again) - shapely.bounds(geometries[todo])).max(axis=1) <= tolerance
        result[todo[fits]] = undone[fits]
        if attempt == 0:
            result[todo[~fits]] = undone[~fits]  # the best guess, should nothing fit
        todo = todo[~fits]
        if todo.size == 0:
            break
    return result


def _unshift_points(mode: ShiftMode | None, lon: np.ndarray, lat: np.ndarray, cell: np.ndarray | None = None):
    """The true positions that mode moved to (lon, lat), by fixed-point iteration (each mode
    is close to a translation, so each round gains digits); a per-cell rigid shift needs the
    cell each point moved with."""
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    if mode is None or lon.size == 0:
        return lon.copy(), lat.copy()
    x, y = lon.copy(), lat.copy()
    for _ in range(50):
        fx, fy = mode.apply(x, y, cell=cell)
        ex, ey = fx - lon, fy - lat
        x -= ex
        y -= ey
        if max(np.abs(ex).max(), np.abs(ey).max()) < 1e-9:  # about 0.1 mm
            break
    return x, y
