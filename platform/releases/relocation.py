"""Re-location figures measured on a release's own data (release step 6; DESIGN.md, "The
attacker"): where a person with a web map puts the released units back, and how far k true
landmarks undo the shift on the release's own layout. Plain Python over whole arrays (numpy,
scipy, shapely 2, pyarrow); no Django.

The basemap attacker
--------------------
They hold the complete release and a true basemap of building footprints and roads, as on
every web map and in OSM; the corpus's own ``building`` footprints and ``road`` segments stand
for it. They

1. undo a public mode (GCJ-02) with its published formula;
2. rebuild what the release lets them: a building from its units that touch one another and
   share the ``building_id`` pseudonym where it is released (any that touch, where not: rooms
   tile floors and stack, buildings stand apart); floors and buildings at those levels of
   detail; grid cells that carry one building's id; and every road segment. Touch splits a
   building that the piecewise-rigid mode tore across a cell border into its pieces;
3. match each rebuilt outline (its convex hull) by shape to the basemap within the published
   offset bound (the report's ``max_offset_m``): candidates by a k-d tree on centroids, a size
   filter, then the Hausdorff distance after translation, within what the mode's published
   stretch allows. A unique close match is an anchor (one far off its neighbours' offsets in a
   smooth field was a false match); ambiguous ones (look-alike houses, street segments) are
   settled by the offsets of the anchors around them;
4. place the buildings suppression left partial (or the shift tore): moved as the anchors
   around them say, each lies inside one footprint; under per-cell moves every move that keeps
   it in its cell is tried, and a piece whose sibling is placed goes where it fits beside it;
5. snap each matched outline onto its footprint, corner on corner (a partial outline can sit
   at either end: the corners decide), and fit its affine map, which takes out the shift's
   local stretch; a map unlike its neighbours' (a partial outline stretched onto the whole
   footprint) is redone from theirs. Each building's units go where its map sends them; every
   other unit (pipes, parcels, unmatched buildings) gets the offset of the anchors around it:
   a local affine fit in a smooth field, the move of its cell under per-cell moves.

The figures: the share of released units put within 1 m and 5 m of the truth (a unit's
representative point is the centroid of its geometry: the released one mapped back, against
the true one), overall and by kind, and the share of rebuilt buildings matched. Any
shape-preserving shift falls to this; the protection is generalization and declassification.

Landmarks on the release's layout
---------------------------------
The attacker of :func:`releases.shift.attack_residuals` (k true landmarks within 2 km; a
constant offset for k < 3, a thin-plate spline for more; a public mode inverted outright),
with landmarks and targets drawn from the true positions of the released units rather than
uniform points. Units cluster, so landmarks lie nearer their targets than uniform points do,
and the residuals are smaller.

Cost and limits
---------------
Both run on one batch of a release (the pipeline gives the first that released anything, at
most 100,000 units), bounded to ``MAX_UNITS`` units in at most ``MAX_BUILDINGS`` buildings,
those nearest the batch's centre, with the other units around them; the report says how many.
About half a CPU-second, whatever the corpus's size. Deterministic: no randomness but the
seeded landmark draws. The figures are what this attacker achieves, a lower bound on a
cleverer one: a field that distorts shapes strongly (300 m over 2 km) defeats one-building
shape matching more often, where matching groups of buildings would not.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from .columns import GRID_CODE
from .lightweight import UNIT_COUNT, LightweightPolicy, lightweight, with_grid_codes
from .shift import CellRigidShift, LocalFrame, ShiftMode, SmoothFieldShift, invert_public, landmark_guess

__all__ = [
    "LANDMARK_KS",
    "MAX_BUILDINGS",
    "MAX_UNITS",
    "Basemap",
    "Sample",
    "attack_report",
    "batch_sample",
    "landmark_residuals",
    "read_basemap",
    "relocate",
]

MAX_BUILDINGS = 2_000
MAX_UNITS = 50_000
LANDMARK_KS = (1, 5, 20)
WITHIN_M = (1.0, 5.0)
BASEMAP_KINDS = ("building", "road")
REBUILT_KINDS = ("room", "floor", "building")  # the units whose outlines make up a building's
PUBLIC_BOUND_M = 5.0  # what is left of a public mode once inverted: rounding to the precision
TOUCH_M = 0.6  # units this close belong to one building when no building_id is released
SEARCH_SLACK_M = 15.0  # a unit's centroid moves with the field at its centroid, give or take
SIZE_TOL_M = 2.0  # widths and heights differ by this, plus the mode's stretch
HAUSDORFF_TOL_M = 1.5  # outlines, once centred, by this, plus a third of the stretch
MAX_STRETCH = 0.3  # a field that stretches more is no longer a map a release would use
AMBIGUITY_M = 1.5  # a runner-up this close to the best match leaves it to the neighbours
PRIOR_TOL_M = 8.0  # a candidate's offset must agree with the neighbours' this well
OUTLIER_M = 15.0  # an anchor this far from its neighbours' offsets was a false match
CORNER_TOL_M = 2.0  # hull corners this close after translation correspond
REFINE_M = 8.0  # how far corner snapping may move a building from its first guess
CORNERS = 10  # corners of an outline that take part in the snapping
FIT_CHUNK = 128  # buildings snapped at once, to bound the (m, P, Q, P, Q) arrays
ROUNDING_STRETCH = 0.03  # corners rounded to the precision stretch a small building this much
STRETCH_AGREE = 0.04  # neighbouring buildings' maps differ by less than this in a smooth field
NEIGHBOURS = 12  # anchors in a local fit
HULL_DIRECTIONS = 64  # directions in which a rebuilt outline's extreme points are looked for


@dataclasses.dataclass(frozen=True)
class Sample:
    """Released units of one batch beside their truth, in metres of one local frame.

    ``shapes`` holds the distinct released geometries as the attacker reads them (a public
    mode already undone; stacked rooms share one) and ``footprint`` each unit's among them
    (``true_footprint`` numbers the distinct true geometries alike);
    ``seen`` and ``true`` are the units' representative points (centroids), released and true;
    ``building`` the released ``building_id`` of units that make up buildings (null elsewhere;
    None when the release has no such column)."""

    frame: LocalFrame
    shapes: np.ndarray
    footprint: np.ndarray
    true_footprint: np.ndarray
    seen: np.ndarray
    true: np.ndarray
    kind: np.ndarray
    building: pa.Array | None
    level_of_detail: str
    batch_units: int


@dataclasses.dataclass(frozen=True)
class Basemap:
    """What a web map shows, in the sample's frame: building footprints and road lines."""

    buildings: np.ndarray
    roads: np.ndarray
    source: str


def attack_report(
    corpus_path: Path,
    mode: ShiftMode | None,
    policy: LightweightPolicy,
    shifted: pa.Table,
    true_geometry: pa.ChunkedArray | pa.Array,
    released: pa.Table,
) -> dict[str, Any]:
    """``report["attacks"]`` figures of a release from one batch: ``shifted`` is the batch as it
    entered lightweighting, ``true_geometry`` its geometry before the shift (aligned rows), and
    ``released`` what was written for it."""
    sample = batch_sample(shifted, true_geometry, released, policy, mode)
    if sample is None:
        return {}
    basemap = read_basemap(corpus_path, sample, bound_m=_bound(mode))
    return {"relocation": relocate(sample, basemap, mode), "landmarks": landmark_residuals(sample, mode)}


def batch_sample(
    shifted: pa.Table,
    true_geometry: pa.ChunkedArray | pa.Array,
    released: pa.Table,
    policy: LightweightPolicy,
    mode: ShiftMode | None,
) -> Sample | None:
    """The released units of a batch that the attacks run on (see :func:`_bounded`), each with
    its true geometry, joined by ``unit_id``: at room level that of the unit; at coarser levels
    the same aggregation run on the true geometry, unrounded and unsimplified (a floor's truth
    is its rooms' true outline, a cell's its members' box). None when nothing was released."""
    batch_units = released.num_rows
    if batch_units == 0:
        return None
    # Stacked rooms share their geometry, released and true: each distinct one is read once.
    released_wkb = pc.dictionary_encode(released.column("geometry").combine_chunks())
    shapes = shapely.from_wkb(released_wkb.dictionary.to_numpy(zero_copy_only=False))
    if mode is not None and not mode.keyed:  # anyone undoes a public mode first
        coords = shapely.get_coordinates(shapes)
        coords[:, 0], coords[:, 1] = invert_public(mode, coords[:, 0], coords[:, 1])
        shapes = shapely.set_coordinates(shapes.copy(), coords)
    footprint = released_wkb.indices.to_numpy()
    centres = _xy(shapely.centroid(shapes))
    frame = LocalFrame(*np.median(centres[footprint], axis=0))
    # A city's units lie well within the frame's extent; any beyond it are left out.
    afar = ~(np.abs(centres - (frame.lon0, frame.lat0)) <= LocalFrame.EXTENT_DEG / 2).all(axis=1)
    inside = np.where(afar[:, None], (frame.lon0, frame.lat0), centres)
    seen = np.column_stack(frame.to_metres(inside[:, 0], inside[:, 1]))[footprint]
    kind = released.column("kind").to_numpy(zero_copy_only=False).astype(str)
    building = None
    if "building_id" in released.column_names:
        building = pc.cast(released.column("building_id").combine_chunks(), pa.string())
        building = pc.if_else(pa.array(np.isin(kind, REBUILT_KINDS)), building, pa.scalar(None, pa.string()))

    members = np.ones(batch_units)
    if UNIT_COUNT in released.column_names:  # an aggregate stands for its members
        members = pc.fill_null(released.column(UNIT_COUNT), 1).to_numpy(zero_copy_only=False).astype(float)
    keep = _bounded(seen, building, members) & ~afar[footprint]
    if policy.level_of_detail == "room":
        truth_ids, truth_wkb = shifted.column("unit_id"), true_geometry
    else:
        truth = shifted.set_column(shifted.schema.get_field_index("geometry"), "geometry", true_geometry)
        if policy.level_of_detail != "grid" and building is not None and not keep.all():
            # Only the attacked buildings need their true outline (cells mix buildings: all of them).
            wanted = pc.unique(building.filter(pa.array(keep)).drop_null())
            truth = truth.filter(pc.fill_null(pc.is_in(truth.column("building_id"), value_set=wanted), False))
        floor = tuple(name for name in ("floor",) if name in shifted.column_names)  # buildings: by floor
        exact = dataclasses.replace(policy, simplify_tolerance_m=0.0, precision_m=0.0, keep_attributes=floor)
        recode = True
        if policy.level_of_detail == "grid" and GRID_CODE in truth.column_names:
            # The release's cells are those of the shifted members: aggregate the truth into them.
            seen_bounds = shapely.bounds(shapely.from_wkb(shifted.column("geometry").to_numpy(zero_copy_only=False)))
            truth, recode = with_grid_codes(truth, seen_bounds, policy), False
        truth, _ = lightweight(truth, exact, recode=recode)
        truth_ids, truth_wkb = truth.column("unit_id"), truth.column("geometry")
    if isinstance(truth_ids, pa.ChunkedArray):
        truth_ids = truth_ids.combine_chunks()
    rows = np.flatnonzero(keep)
    at = pc.fill_null(pc.index_in(released.column("unit_id").take(pa.array(rows)), value_set=truth_ids), -1)
    at = at.to_numpy()
    rows, at = rows[at >= 0], at[at >= 0]
    if len(rows) == 0:
        return None
    true_wkb = pc.dictionary_encode(pc.take(truth_wkb, pa.array(at)))
    if isinstance(true_wkb, pa.ChunkedArray):
        true_wkb = true_wkb.combine_chunks()
    true_centres = _xy(shapely.centroid(shapely.from_wkb(true_wkb.dictionary.to_numpy(zero_copy_only=False))))
    used, footprint = np.unique(footprint[rows], return_inverse=True)
    true_footprint = true_wkb.indices.to_numpy()
    return Sample(
        frame=frame,
        shapes=shapely.transform(shapes[used], lambda c: np.column_stack(frame.to_metres(c[:, 0], c[:, 1]))),
        footprint=footprint.ravel(),
        true_footprint=true_footprint,
        seen=seen[rows],
        true=np.column_stack(frame.to_metres(true_centres[:, 0], true_centres[:, 1]))[true_footprint],
        kind=kind[rows],
        building=None if building is None else building.take(pa.array(rows)),
        level_of_detail=policy.level_of_detail,
        batch_units=batch_units,
    )


def read_basemap(corpus_path: Path, sample: Sample, *, bound_m: float) -> Basemap:
    """The corpus's true building footprints and road segments around the sample (public:
    every one, whatever the release removed). A corpus without footprints gets the true
    outlines of the sample's buildings instead, which is what a web map would show."""
    table = pq.read_table(corpus_path, columns=["kind", "geometry"],
                          filters=[("kind", "in", list(BASEMAP_KINDS))])
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    kind = table.column("kind").to_numpy(zero_copy_only=False).astype(str)
    xmin, ymin = sample.seen.min(axis=0) - (bound_m + 500.0)
    xmax, ymax = sample.seen.max(axis=0) + (bound_m + 500.0)
    (lon0, lon1), (lat0, lat1) = (sample.frame.to_degrees(np.array([xmin, xmax]), np.array([ymin, ymax])))
    near = shapely.intersects(geoms, shapely.box(lon0, lat0, lon1, lat1))
    geoms, kind = _to_metres(geoms[near], sample.frame), kind[near]
    buildings, roads = geoms[kind == "building"], geoms[kind == "road"]
    source = "the corpus's building footprints and road segments"
    if len(buildings) == 0:
        buildings = np.empty(0, dtype=object)
        source = ("the corpus's road segments, and for footprints (it has none) the true outlines of the "
                  "released buildings")
    return Basemap(buildings=buildings, roads=roads, source=source)


def relocate(sample: Sample, basemap: Basemap, mode: ShiftMode | None) -> dict[str, Any]:
    """The basemap attacker's figures on ``sample`` (see the module docstring)."""
    done = _attack(sample, basemap, mode)
    sample, n_buildings = done.sample, len(done.complete)
    anchors = done.matched >= 0
    error = np.hypot(*(done.estimate - sample.true).T)
    by_kind = {}
    for kind in np.unique(sample.kind):
        here = sample.kind == kind
        by_kind[str(kind)] = {"units": int(here.sum()), **_shares(error[here])}
    return {
        "attacker": ("the complete release and a true basemap (building footprints, roads): buildings "
                     "rebuilt from their units, matched by shape within the published offset bound, each "
                     "mapped back by its footprint; other units by the matches around them"),
        "note": ("what this attacker achieves: a lower bound on what a cleverer one would (the shares are "
                 "those of released units, by the centroid of their geometry)"),
        "level_of_detail": sample.level_of_detail,
        "bound_m": _bound(mode),
        "units": len(error),
        **_shares(error),
        "median_error_m": round(float(np.median(error)), 3),
        "by_kind": by_kind,
        "buildings": {
            "rebuilt": n_buildings,
            "matched": int(anchors[:n_buildings].sum()),
            "share_matched": round(float(anchors[:n_buildings].mean()), 4) if n_buildings else None,
            "matched_corner_for_corner": int(done.complete.sum()),
        },
        "roads": {"released": len(done.roads), "matched": int(anchors[n_buildings:].sum())},
        "basemap": {"buildings": done.footprints, "roads": len(basemap.roads), "source": basemap.source},
        "sample": {
            "batch_units": sample.batch_units,
            "units": len(error),
            "note": (f"one batch of the release; at most {MAX_UNITS:,} units in at most {MAX_BUILDINGS:,} "
                     "buildings, those nearest its centre, with the other units around them"),
        },
    }


@dataclasses.dataclass(frozen=True)
class _Outcome:
    sample: Sample  # the units attacked (the bounded sample)
    estimate: np.ndarray  # (n, 2) where the attacker puts each unit
    unit: np.ndarray  # each unit's rebuilt building, or -1
    matched: np.ndarray  # per rebuilt building, then per road: the basemap feature, or -1
    complete: np.ndarray  # per rebuilt building: landed corner for corner
    roads: np.ndarray  # the units that are roads
    footprints: int


def _attack(sample: Sample, basemap: Basemap, mode: ShiftMode | None) -> _Outcome:
    bound = _bound(mode)
    unit, building = _buildings(sample)
    n_buildings = len(building)

    hulls = _hulls(sample, unit, n_buildings)
    footprints = basemap.buildings
    if len(footprints) == 0:  # no footprints: the true outlines stand for the web map
        footprints = _true_outlines(sample, unit, n_buildings)
    footprints = shapely.simplify(shapely.convex_hull(footprints), 0.1)
    roads = np.flatnonzero(sample.kind == "road")

    shapes = np.concatenate([hulls, sample.shapes[sample.footprint[roads]]])
    cls = np.r_[np.zeros(n_buildings, int), np.ones(len(roads), int)]
    base = np.concatenate([footprints, basemap.roads])
    base_cls = np.r_[np.zeros(len(footprints), int), np.ones(len(basemap.roads), int)]
    cells = _cell_lookup(mode, sample.frame)
    stretch = _stretch(mode)
    matched, offset = _match(shapes, cls, base, base_cls, bound=bound, stretch=stretch, cells=cells)
    whole = matched >= 0
    centre = _xy(shapely.centroid(shapes))
    maps = np.zeros((n_buildings, 2, 3))
    complete = np.zeros(n_buildings, dtype=bool)
    if n_buildings:
        b = slice(0, n_buildings)
        # Buildings that lost units to suppression: where the matches around them put them.
        matched[b], offset[b] = _partial(hulls, footprints, matched[b], offset[b], centre[whole],
                                         offset[whole], cells=cells)
        maps, complete = _fit(hulls, footprints, matched[b], offset[b], centre[b], stretch=stretch)
        offset[b] = maps[:, :, 2] - centre[b]
        # The field's stretch changes slowly: a map unlike its neighbours' fitted a partial
        # outline to the whole footprint.
        sure = np.flatnonzero(complete)
        if len(sure) > 1:
            expected = _interpolate(centre[sure], offset[sure], centre[sure], cells=cells, leave_out=True,
                                    values=maps[sure, :, :2].reshape(-1, 4)).reshape(-1, 2, 2)
            complete[sure] = np.linalg.norm(maps[sure, :, :2] - expected, ord=2, axis=(1, 2)) <= STRETCH_AGREE
        # An outline that did not land corner for corner (a partial one can sit at either end
        # of its footprint) is placed again from those that did.
        again = ~complete
        if complete.any() and again.any():
            matched[b][again] = -1
            matched[b], offset[b] = _partial(hulls, footprints, matched[b], offset[b], centre[b][complete],
                                             offset[b][complete], cells=cells)
            redo = again & (matched[b] >= 0)
            stretch_guess = _interpolate(centre[b][complete], offset[b][complete], centre[b][redo],
                                         cells=cells, values=maps[complete, :, :2].reshape(-1, 4))
            stretch_guess = stretch_guess.reshape(-1, 2, 2)
            maps[redo], complete[redo] = _fit(hulls[redo], footprints, matched[b][redo], offset[b][redo],
                                              centre[b][redo], stretch_guess, stretch=stretch)
            offset[b] = maps[:, :, 2] - centre[b]
        # A piece of a torn building whose cell held no anchor: where its placed sibling left room.
        matched[b], maps = _siblings(hulls, footprints, matched[b], maps, centre[b], building)
        offset[b] = maps[:, :, 2] - centre[b]

    # Every unit's estimate: its building's map, its road's offset, or the anchors around it.
    anchors = matched >= 0
    estimate = sample.seen.copy()
    inside = np.flatnonzero(unit >= 0)
    inside = inside[anchors[unit[inside]]]
    owner = unit[inside]
    relative = sample.seen[inside] - centre[owner]
    estimate[inside] = np.einsum("nij,nj->ni", maps[owner, :, :2], relative) + maps[owner, :, 2]
    on_road = anchors[n_buildings:]
    estimate[roads[on_road]] += offset[n_buildings:][on_road]
    rest = np.ones(len(estimate), dtype=bool)
    rest[inside] = rest[roads[on_road]] = False
    rest = np.flatnonzero(rest)
    if len(rest):  # once per distinct geometry: stacked units share their point
        _, first, back = np.unique(sample.footprint[rest], return_index=True, return_inverse=True)
        move = _interpolate(centre[anchors], offset[anchors], sample.seen[rest[first]], cells=cells)
        estimate[rest] += move[back.ravel()]

    return _Outcome(sample=sample, estimate=estimate, unit=unit, matched=matched, complete=complete,
                    roads=roads, footprints=len(footprints))


def landmark_residuals(
    sample: Sample,
    mode: ShiftMode | None,
    *,
    ks: tuple[int, ...] = LANDMARK_KS,
    radius_m: float = 2000.0,
    trials: int = 20,
    held_out: int = 200,
    rng_seed: int = 0,
) -> dict[str, Any]:
    """Median error (metres) of the landmark attacker of :func:`releases.shift.attack_residuals`
    on the release's own layout: each trial centres a disc of ``radius_m`` on a released unit,
    draws k landmarks and up to ``held_out`` targets among the distinct true positions of the
    released units in it, fits the shift from the landmarks' released and true positions, and
    maps the targets' released positions back. A public mode is inverted outright (k does not
    matter); an unshifted release has nothing to undo."""
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: landmark counts must be at least 1, got {ks!r}")
    _, first = np.unique(sample.true_footprint, return_index=True)
    first.sort()  # stacked units share a position: one point each, in release order
    true, seen = sample.true[first], sample.seen[first]
    tree = cKDTree(true)
    rng = np.random.default_rng(rng_seed)
    residual = {}
    for k in ks:
        errors = []
        for _ in range(trials):
            near = np.asarray(tree.query_ball_point(true[rng.integers(len(true))], radius_m), dtype=np.int64)
            if len(near) <= k:
                continue
            near.sort()
            drawn = rng.choice(near, size=min(k + held_out, len(near)), replace=False)
            landmarks, targets = drawn[:k], drawn[k:]
            if mode is None or not mode.keyed:
                guess = seen[targets]  # the public formula is undone already
            else:
                guess = landmark_guess(seen[landmarks], true[landmarks], seen[targets])
            errors.append(np.hypot(*(guess - true[targets]).T))
        residual[str(k)] = round(float(np.median(np.concatenate(errors))), 3) if errors else None
    return {
        "attacker": ("k true landmarks within 2 km: a constant offset for k < 3, a thin-plate spline for "
                     "more, fitted on the released units' own positions"),
        "residual_m": residual,
        "points": len(true),
        "radius_m": radius_m,
        "trials": trials,
        "held_out": held_out,
    }


# ---------------------------------------------------------------------------------------
# The attacker's steps, over whole arrays.


def _bound(mode: ShiftMode | None) -> float:
    return float(mode.max_offset_m) if mode is not None and mode.keyed else PUBLIC_BOUND_M


def _stretch(mode: ShiftMode | None) -> float:
    """How far a released outline may be stretched from its footprint (the norm of a map's
    linear part less the identity), from the mode's published parameters, plus what rounding
    to the precision adds to a building's corners."""
    if isinstance(mode, SmoothFieldShift):
        allowed = mode.strain_bound / (1.0 - mode.strain_bound)  # the inverse map's bound
    elif isinstance(mode, CellRigidShift):
        allowed = 2.0 * np.sin(np.radians(mode.max_rotation_deg) / 2.0)
    else:
        allowed = 0.0
    return float(allowed) + ROUNDING_STRETCH


def _buildings(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's rebuilt building (-1 for none): the units that touch one another and share a
    released building_id (any that touch, where none is released). Touch splits a building that
    a piecewise-rigid shift tore across a cell border into the pieces that moved together.
    Also each rebuilt building's building_id, as a number (-1 where none is released)."""
    polygon = np.isin(shapely.get_type_id(sample.shapes), (3, 6))[sample.footprint]
    rebuilt = np.flatnonzero(polygon & np.isin(sample.kind, REBUILT_KINDS))
    unit = np.full(len(polygon), -1, dtype=np.int64)
    if len(rebuilt) == 0:
        return unit, np.empty(0, dtype=np.int64)
    key = np.full(len(rebuilt), -1, dtype=np.int64)
    if sample.building is not None:
        ids = sample.building.take(pa.array(rebuilt))
        known = ids.is_valid().to_numpy(zero_copy_only=False)
        key[known] = pc.dictionary_encode(ids.filter(pa.array(known))).indices.to_numpy()
    # One node per building and distinct footprint (stacked rooms share one), joined by touch.
    pair = (key + 1) * (int(sample.footprint.max()) + 1) + sample.footprint[rebuilt]
    _, first, node = np.unique(pair, return_index=True, return_inverse=True)
    shapes, node_key = sample.shapes[sample.footprint[rebuilt[first]]], key[first]
    left, right = shapely.STRtree(shapes).query(shapes, predicate="dwithin", distance=TOUCH_M)
    same = node_key[left] == node_key[right]
    graph = sparse.coo_matrix((np.ones(int(same.sum())), (left[same], right[same])), shape=(len(shapes),) * 2)
    count, component = csgraph.connected_components(graph, directed=False)
    unit[rebuilt] = component[node.ravel()]
    building = np.empty(count, dtype=np.int64)
    building[component] = node_key
    return unit, building


def _bounded(seen: np.ndarray, building: pa.Array | None, members: np.ndarray) -> np.ndarray:
    """Which units of a batch the attacks run on: the buildings nearest its centre, whole (by
    their released building_id), at most MAX_BUILDINGS of them and MAX_UNITS units (an aggregate
    counts its ``members``), with the other units in the disc they span; without building_id,
    the units nearest the centre up to MAX_UNITS."""
    keep = np.ones(len(seen), dtype=bool)
    if members.sum() <= MAX_UNITS:
        return keep
    middle = np.median(seen, axis=0)
    distance = np.hypot(*(seen - middle).T)
    if building is None or building.null_count == len(building):
        order = np.argsort(distance, kind="stable")
        keep[order[max(1, int(np.searchsorted(np.cumsum(members[order]), MAX_UNITS, side="right"))):]] = False
        return keep
    known = building.is_valid().to_numpy(zero_copy_only=False)
    key = np.full(len(keep), -1, dtype=np.int64)
    key[known] = pc.dictionary_encode(building.filter(pa.array(known))).indices.to_numpy()
    count = np.bincount(key[known], weights=members[known])
    size = np.bincount(key[known])
    near = np.column_stack([np.bincount(key[known], weights=seen[known, i]) for i in (0, 1)]) / size[:, None]
    order = np.argsort(np.hypot(*(near - middle).T), kind="stable")
    fits = int(np.searchsorted(np.cumsum(count[order]), MAX_UNITS, side="right"))
    taken = order[: max(1, min(MAX_BUILDINGS, fits))]
    chosen = np.zeros(len(count), dtype=bool)
    chosen[taken] = True
    reach = np.hypot(*(near[taken] - middle).T).max()
    return np.where(known, chosen[np.maximum(key, 0)], distance <= reach)


def _hulls(sample: Sample, unit: np.ndarray, n: int) -> np.ndarray:
    """Each rebuilt building's convex hull, from the vertices of its distinct footprints, with
    the near-collinear corners that rounding adds along an edge taken out."""
    if n == 0:
        return np.empty(0, dtype=object)
    members = np.flatnonzero(unit >= 0)
    pair = unit[members] * (int(sample.footprint.max()) + 1) + sample.footprint[members]
    _, first = np.unique(pair, return_index=True)
    members = members[first]
    coords, which = shapely.get_coordinates(sample.shapes[sample.footprint[members]], return_index=True)
    owner = unit[members][which]
    order = np.argsort(owner, kind="stable")
    coords, owner = coords[order], owner[order]
    # Only points extreme in one of HULL_DIRECTIONS directions can be hull corners worth
    # keeping: a far smaller set to build the hulls from.
    angle = np.linspace(0.0, 2.0 * np.pi, HULL_DIRECTIONS, endpoint=False)
    reach = coords @ np.stack([np.cos(angle), np.sin(angle)])
    start = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    extreme = (reach >= np.maximum.reduceat(reach, start, axis=0)[owner] - 1e-9).any(axis=1)
    points = shapely.multipoints(coords[extreme], indices=owner[extreme])
    return shapely.simplify(shapely.convex_hull(points), 0.5)


def _true_outlines(sample: Sample, unit: np.ndarray, n: int) -> np.ndarray:
    """Stand-in footprints where the corpus has none: each rebuilt hull moved by its units'
    mean true offset, the outline a web map would show."""
    hulls = _hulls(sample, unit, n)
    if n == 0:  # nothing built (a network of segments): no outline to stand in
        return hulls
    inside = unit >= 0
    counts = np.bincount(unit[inside], minlength=n)[:, None]
    true_offset = (sample.true - sample.seen)[inside]
    move = np.column_stack([np.bincount(unit[inside], weights=true_offset[:, i], minlength=n)
                            for i in (0, 1)])
    move /= counts
    return _translated(hulls, move)


def _match(
    shapes: np.ndarray,
    cls: np.ndarray,
    base: np.ndarray,
    base_cls: np.ndarray,
    *,
    bound: float,
    stretch: float,
    cells: Callable[[np.ndarray], np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each shape, the basemap feature it is (-1 for none) and the offset (metres) from
    its released centroid to that feature's. Sizes and outlines may differ by what the mode's
    ``stretch`` allows (a third of it for outlines: the bound is rarely reached)."""
    n = len(shapes)
    matched, offset = np.full(n, -1, dtype=np.int64), np.zeros((n, 2))
    if n == 0 or len(base) == 0:
        return matched, offset
    centre, base_centre = _xy(shapely.centroid(shapes)), _xy(shapely.centroid(base))
    pairs = cKDTree(centre).sparse_distance_matrix(cKDTree(base_centre), bound + SEARCH_SLACK_M,
                                                   output_type="ndarray")
    pu, pb = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    pu, pb = pu[cls[pu] == base_cls[pb]], pb[cls[pu] == base_cls[pb]]
    size, base_size = _size(shapes), _size(base)
    stretch = min(stretch, MAX_STRETCH)
    tolerance = SIZE_TOL_M + stretch * size.max(axis=1)
    close = (np.abs(size[pu] - base_size[pb]) <= tolerance[pu, None]).all(axis=1)
    pu, pb = pu[close], pb[close]
    move = base_centre[pb] - centre[pu]
    distance = shapely.hausdorff_distance(_translated(shapes[pu], move), base[pb])
    fits = distance <= HAUSDORFF_TOL_M + stretch / 3.0 * size.max(axis=1)[pu]
    pu, pb, move, distance = pu[fits], pb[fits], move[fits], distance[fits]
    if len(pu) == 0:
        return matched, offset

    # A clear best fit is an anchor; a close runner-up is left to the neighbours.
    order = np.lexsort((distance, pu))
    pu, pb, move, distance = pu[order], pb[order], move[order], distance[order]
    first = np.r_[True, pu[1:] != pu[:-1]]
    runner = np.r_[~first[1:], False]  # the next pair belongs to the same shape
    gap = np.where(runner, np.r_[distance[1:], np.inf] - distance, np.inf)
    clear = first & (gap > AMBIGUITY_M)
    matched[pu[clear]], offset[pu[clear]] = pb[clear], move[clear]
    if cells is None:  # a smooth field: an anchor far off its neighbours' offsets was wrong
        anchors = np.flatnonzero(matched >= 0)
        if len(anchors) > NEIGHBOURS:
            expected = _interpolate(centre[anchors], offset[anchors], centre[anchors], cells=None,
                                    leave_out=True)
            wrong = anchors[np.hypot(*(offset[anchors] - expected).T) > OUTLIER_M]
            matched[wrong] = -1

    for _ in range(2):  # the rest by the anchors around them, then once more with the new ones
        anchors = matched >= 0
        if not anchors.any():
            break
        open_ = ~anchors[pu]
        if not open_.any():
            break
        qu, qb, qmove = pu[open_], pb[open_], move[open_]
        prior = _interpolate(centre[anchors], offset[anchors], centre[qu], cells=cells)
        miss = np.hypot(*(qmove - prior).T)
        order = np.lexsort((miss, qu))
        qu, qb, qmove, miss = qu[order], qb[order], qmove[order], miss[order]
        first = np.r_[True, qu[1:] != qu[:-1]]
        runner = np.r_[~first[1:], False]
        second = np.where(runner, np.r_[miss[1:], np.inf], np.inf)
        take = first & (miss <= PRIOR_TOL_M) & (second > PRIOR_TOL_M)
        matched[qu[take]], offset[qu[take]] = qb[take], qmove[take]
    return matched, offset


def _partial(
    hulls: np.ndarray,
    footprints: np.ndarray,
    matched: np.ndarray,
    offset: np.ndarray,
    anchor_at: np.ndarray,
    anchor_offset: np.ndarray,
    *,
    cells: Callable[[np.ndarray], np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Buildings whose rebuilt outline is only part of their footprint (suppression took some
    of their units, or a piecewise-rigid shift tore it): moved by the offset that the anchors
    around them predict (under cells, by each move that keeps them in its cell), each lies
    inside one footprint; that footprint is theirs, and the move their first guess."""
    matched, offset = matched.copy(), offset.copy()
    open_ = np.flatnonzero(matched < 0)
    if len(open_) == 0 or len(anchor_at) == 0 or len(footprints) == 0:
        return matched, offset
    where = _xy(shapely.centroid(hulls[open_]))
    if cells is None:
        unit, prior = np.arange(len(open_)), _interpolate(anchor_at, anchor_offset, where, cells=None)
    else:  # a piece at a cell border could have moved with either cell: try each
        move, _, fits, _ = _cell_moves(anchor_at, anchor_offset, anchor_offset, where, cells)
        unit, cell = np.nonzero(fits)
        prior = move[cell]
    moved = _translated(hulls[open_][unit], prior)
    which, foot = shapely.STRtree(footprints).query(moved, predicate="intersects")
    share = shapely.area(shapely.intersection(moved[which], footprints[foot])) / np.maximum(
        shapely.area(moved[which]), 1e-9
    )
    order = np.lexsort((-share, unit[which]))
    which, foot, share = which[order], foot[order], share[order]
    best = np.r_[True, unit[which][1:] != unit[which][:-1]] & (share >= 0.8)
    matched[open_[unit[which[best]]]] = foot[best]
    offset[open_[unit[which[best]]]] = prior[which[best]]
    return matched, offset


def _fit(
    hulls: np.ndarray,
    footprints: np.ndarray,
    matched: np.ndarray,
    guess: np.ndarray,
    centre: np.ndarray,
    linear: np.ndarray | None = None,
    *,
    stretch: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2, 3) maps from released metres to true metres, ``x -> A (x - c) + c + t`` with c a
    hull's centroid and the last column ``c + t``, and which outlines landed corner for corner
    on their footprint.

    Each map starts from a linear part: ``linear`` (the stretch the buildings around measured)
    or else the scale that takes the hull's box onto the footprint's. Then the translation:
    each pair of a hull corner and a footprint corner proposes one within REFINE_M of the
    ``guess`` (as does, without ``linear``, the box alignment), and the one that lands most
    corners on footprint corners wins, so that a partial outline, whose centroid is pulled
    aside by its missing units, still snaps onto its footprint. Last, least squares on the
    corners that landed: an affine map where 3 or more pin one, which takes out the shift's
    local stretch and shear. No map may stretch more than the mode can (``stretch``, the norm
    of its linear part less the identity): stretching a partial outline onto its whole
    footprint is not a fit. Unmatched buildings keep their guess."""
    maps = np.zeros((len(hulls), 2, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = 1.0
    maps[:, :, 2] = centre + guess
    complete = np.zeros(len(hulls), dtype=bool)
    done = np.flatnonzero(matched >= 0)
    for part in np.array_split(done, -(-len(done) // FIT_CHUNK)) if len(done) else ():
        m, c, near = len(part), centre[part], guess[part]
        src, src_n = _corners(hulls[part])
        dst, dst_n = _corners(footprints[matched[part]])
        if linear is None:
            size, base = _size(hulls[part]), _size(footprints[matched[part]])
            scale = np.where(size > 1e-6, base / np.maximum(size, 1e-6), 1.0)
            scale[(np.abs(scale - 1.0) > stretch).any(axis=1)] = 1.0  # not the whole outline
            a = np.zeros((m, 2, 2))
            a[:, 0, 0], a[:, 1, 1] = scale[:, 0], scale[:, 1]
            box = _box_centre(hulls[part])
            box_move = _box_centre(footprints[matched[part]]) - (np.einsum("nij,nj->ni", a, box - c) + c)
            extra = box_move[:, None, :]
        else:
            a, extra = linear[part], np.zeros((m, 0, 2))
        mapped = np.einsum("nij,nkj->nki", a, src - c[:, None, :]) + c[:, None, :]
        move = np.concatenate([(dst[:, None, :, :] - mapped[:, :, None, :]).reshape(m, -1, 2), extra], axis=1)
        proposed = np.concatenate([(src_n[:, :, None] & dst_n[:, None, :]).reshape(m, -1),
                                   np.ones(extra.shape[:2], dtype=bool)], axis=1)
        away = np.linalg.norm(move - near[:, None, :], axis=2)
        proposed &= away <= REFINE_M
        landed = mapped[:, None, :, None, :] + move[:, :, None, None, :] - dst[:, None, None, :, :]
        hit = (np.linalg.norm(landed, axis=4) <= CORNER_TOL_M) & dst_n[:, None, None, :]
        votes = (hit.any(axis=3) & src_n[:, None, :]).sum(axis=2) - away / (2.0 * REFINE_M)  # ties: nearer
        votes[~proposed] = -np.inf
        best = votes.argmax(axis=1)
        shift = np.where(np.isfinite(votes[np.arange(m), best])[:, None], move[np.arange(m), best], near)
        for tolerance in (CORNER_TOL_M, CORNER_TOL_M / 2):  # fit, then refit on the corners that fit
            mapped = np.einsum("nij,nkj->nki", a, src - c[:, None, :]) + c[:, None, :] + shift[:, None, :]
            pairs, to_dst = _mutual(mapped, src_n, dst, dst_n, tolerance)
            design = np.concatenate([src - c[:, None, :], np.ones(src.shape[:2] + (1,))], axis=2)
            design *= pairs[:, :, None]
            target = dst[np.arange(m)[:, None], to_dst] * pairs[:, :, None]
            normal = np.einsum("nki,nkj->nij", design, design)
            enough = pairs.sum(axis=1) >= 3
            enough[enough] = np.linalg.cond(normal[enough]) < 1e8  # collinear corners pin no map
            if not enough.any():
                break
            moment = np.einsum("nki,nkj->nij", design[enough], target[enough])
            solved = np.linalg.solve(normal[enough], moment)
            fitted = np.transpose(solved[:, :2, :], (0, 2, 1))
            plausible = np.linalg.norm(fitted - np.eye(2), ord=2, axis=(1, 2)) <= stretch
            enough[enough] = plausible
            a, shift = np.array(a), np.array(shift)
            a[enough] = fitted[plausible]
            shift[enough] = solved[plausible, 2, :] - c[enough]
        fits = (pairs.sum(axis=1) == src_n.sum(axis=1)) & (pairs.sum(axis=1) == dst_n.sum(axis=1))
        maps[part, :, :2] = a
        maps[part, :, 2] = c + shift
        complete[part] = fits & (np.linalg.norm(a - np.eye(2), ord=2, axis=(1, 2)) <= stretch)
    return maps, complete


def _siblings(
    hulls: np.ndarray, footprints: np.ndarray, matched: np.ndarray, maps: np.ndarray, centre: np.ndarray,
    building: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of one building (same released building_id) share its footprint. An unplaced
    piece whose sibling is placed goes where its corners land on the footprint's while it lies
    inside the footprint and off the placed siblings: each pair of a piece corner and a
    footprint corner proposes a move (after the sibling's linear part), the most corners landed
    wins, and a tie leaves the piece unplaced."""
    matched, maps = matched.copy(), maps.copy()
    placed = np.flatnonzero((matched >= 0) & (building >= 0))
    open_ = np.flatnonzero((matched < 0) & np.isin(building, building[placed]))
    if len(open_) == 0:
        return matched, maps
    sibling = np.argsort(building[placed], kind="stable")  # placed pieces, by building
    first = placed[sibling][np.searchsorted(building[placed][sibling], building[open_])]
    foot = matched[first]
    linear = maps[first, :, :2]
    src, src_n = _corners(hulls[open_])
    dst, dst_n = _corners(footprints[foot])
    c = centre[open_]
    mapped = np.einsum("nij,nkj->nki", linear, src - c[:, None, :]) + c[:, None, :]
    move = (dst[:, None, :, :] - mapped[:, :, None, :]).reshape(len(open_), -1, 2)
    proposed = (src_n[:, :, None] & dst_n[:, None, :]).reshape(len(open_), -1)
    landed = mapped[:, None, :, None, :] + move[:, :, None, None, :] - dst[:, None, None, :, :]
    hit = (np.linalg.norm(landed, axis=4) <= CORNER_TOL_M) & dst_n[:, None, None, :]
    votes = np.where(proposed, (hit.any(axis=3) & src_n[:, None, :]).sum(axis=2), 0)
    # Inside the footprint and off the placed pieces of the building.
    row, hypothesis = np.nonzero(votes > 0)
    if len(row) == 0:
        return matched, maps
    piece = _placed_outline(hulls[open_][row], linear[row], c[row], move[row, hypothesis])
    taken = _placed_outline(hulls[first][row], maps[first][row, :, :2], centre[first][row],
                            maps[first][row, :, 2] - centre[first][row])
    area = np.maximum(shapely.area(piece), 1e-9)
    fits = (shapely.area(shapely.intersection(piece, footprints[foot][row])) >= 0.9 * area) & (
        shapely.area(shapely.intersection(piece, taken)) <= 0.1 * area)
    score = np.zeros(votes.shape)
    score[row[fits], hypothesis[fits]] = votes[row[fits], hypothesis[fits]]
    best = score.argmax(axis=1)
    top = score[np.arange(len(open_)), best]
    unique = (score == top[:, None]).sum(axis=1) == 1
    # Moves that differ by rounding alone are one move.
    chosen = move[np.arange(len(open_)), best]
    agree = (np.linalg.norm(move - chosen[:, None, :], axis=2) <= CORNER_TOL_M) | (score < top[:, None])
    unique |= agree.all(axis=1)
    take = (top > 0) & unique
    matched[open_[take]] = foot[take]
    maps[open_[take], :, :2] = linear[take]
    maps[open_[take], :, 2] = c[take] + chosen[take]
    return matched, maps


def _placed_outline(
    hulls: np.ndarray, linear: np.ndarray, centre: np.ndarray, move: np.ndarray
) -> np.ndarray:
    """Hulls mapped by ``x -> A (x - c) + c + move``, one map each."""
    coords, which = shapely.get_coordinates(hulls, return_index=True)
    moved = np.einsum("nij,nj->ni", linear[which], coords - centre[which]) + centre[which] + move[which]
    return shapely.set_coordinates(np.array(hulls, dtype=object), moved)


def _mutual(
    src: np.ndarray, src_n: np.ndarray, dst: np.ndarray, dst_n: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which padded corners of src have a mutual nearest corner in dst within tolerance, and
    the index of that corner."""
    gap = np.linalg.norm(src[:, :, None, :] - dst[:, None, :, :], axis=3)
    gap[~src_n[:, :, None] | ~dst_n[:, None, :]] = np.inf
    to_dst, to_src = gap.argmin(axis=2), gap.argmin(axis=1)
    rows = np.arange(len(src))[:, None]
    pairs = (to_src[rows, to_dst] == np.arange(src.shape[1])) & (gap.min(axis=2) <= tolerance)
    return pairs, to_dst


def _interpolate(
    at: np.ndarray,
    offsets: np.ndarray,
    points: np.ndarray,
    *,
    cells: Callable[[np.ndarray], np.ndarray] | None,
    values: np.ndarray | None = None,
    leave_out: bool = False,
) -> np.ndarray:
    """What anchors at ``at`` (released metres), which the basemap moved by ``offsets``, say
    about other points: the offset (or ``values``, one row per anchor) there. In a smooth field,
    a local affine fit to the NEIGHBOURS nearest, weighted by nearness. Under piecewise-rigid
    ``cells`` (a map from true metres to cell numbers), see :func:`_by_cell`. Zero where there
    is no anchor. ``leave_out``: the points are the anchors, each told from the others (in a
    smooth field; a cell's anchors all tell the same)."""
    values = offsets if values is None else values
    skip = 1 if leave_out and cells is None else 0
    if len(at) - skip < 1 or len(points) == 0:
        return np.zeros((len(points), values.shape[1]))
    if cells is not None:
        return _by_cell(at, offsets, values, points, cells)
    k = min(len(at) - skip, NEIGHBOURS)
    distance, index = cKDTree(at).query(points, k=k + skip)
    distance, index = distance.reshape(len(points), -1)[:, skip:], index.reshape(len(points), -1)[:, skip:]
    weights = 1.0 / (distance + 10.0)
    if k < 3:
        return (values[index] * weights[:, :, None]).sum(axis=1) / weights.sum(axis=1)[:, None]
    relative = at[index] - points[:, None, :]
    design = np.concatenate([np.ones(relative.shape[:2] + (1,)), relative / 100.0], axis=2)
    weighted = design * weights[:, :, None]
    normal = np.einsum("nki,nkj->nij", weighted, design)
    normal[:, 1, 1] += 1e-3 * weights.sum(axis=1)  # a row of anchors pins no slope across it
    normal[:, 2, 2] += 1e-3 * weights.sum(axis=1)
    solved = np.linalg.solve(normal, np.einsum("nki,nkj->nij", weighted, values[index]))
    return solved[:, 0, :]


def _by_cell(
    at: np.ndarray, offsets: np.ndarray, values: np.ndarray, points: np.ndarray,
    cells: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Under piecewise-rigid cells every unit of a cell moves alike. A point belongs to a cell
    that its move puts it in (see :func:`_cell_moves`); of those, the one whose anchors lie
    nearest it in the release (else the nearest of all). Returns that cell's median value."""
    _, value, fits, distance = _cell_moves(at, offsets, values, points, cells)
    nearest_fitting = np.where(fits, distance, np.inf).argmin(axis=1)
    choice = np.where(fits.any(axis=1), nearest_fitting, distance.argmin(axis=1))
    return value[choice]


def _cell_moves(
    at: np.ndarray, offsets: np.ndarray, values: np.ndarray, points: np.ndarray,
    cells: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each cell that holds an anchor, known by its move (the median of its anchors' offsets):
    the moves (C, 2), the median values (C, ...), which cells each point's move would put it
    in (n, C), and how far each point lies from each cell's anchors in the release (n, C)."""
    own = cells(at + offsets)
    ids, which = np.unique(own, axis=0, return_inverse=True)
    which = which.ravel()
    order = np.argsort(which, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(which[order]) != 0])
    groups = np.split(order, starts[1:])  # one array per cell, not per unit
    move = np.array([np.median(offsets[g], axis=0) for g in groups])
    value = np.array([np.median(values[g], axis=0) for g in groups])
    where = np.array([at[g].mean(axis=0) for g in groups])
    landing = cells((points[:, None, :] + move[None, :, :]).reshape(-1, 2)).reshape(len(points), len(ids), 2)
    fits = (landing == ids[None, :, :]).all(axis=2)
    return move, value, fits, np.linalg.norm(points[:, None, :] - where[None, :, :], axis=2)


def _cell_lookup(mode: ShiftMode | None, frame: LocalFrame) -> Callable[[np.ndarray], np.ndarray] | None:
    """Under the piecewise-rigid mode, the cell (published size and origin) that holds each
    point given in the sample's metres; None for a smooth field."""
    if not isinstance(mode, CellRigidShift):
        return None
    return lambda xy: mode.cell_of(*frame.to_degrees(xy[:, 0], xy[:, 1]))


def _corners(polygons: np.ndarray, most: int = CORNERS) -> tuple[np.ndarray, np.ndarray]:
    """Exterior corners (closing point dropped) padded to (n, m, 2), and which are real."""
    coords, which = shapely.get_coordinates(shapely.get_exterior_ring(polygons), return_index=True)
    last = np.r_[which[1:] != which[:-1], True]
    coords, which = coords[~last], which[~last]
    start = np.searchsorted(which, np.arange(len(polygons)))
    slot = np.arange(len(which)) - start[which]
    width = min(most, int(slot.max()) + 1 if len(slot) else 1)
    keep = slot < width
    padded = np.zeros((len(polygons), width, 2))
    real = np.zeros((len(polygons), width), dtype=bool)
    padded[which[keep], slot[keep]] = coords[keep]
    real[which[keep], slot[keep]] = True
    return padded, real


def _box_centre(geoms: np.ndarray) -> np.ndarray:
    xmin, ymin, xmax, ymax = shapely.bounds(geoms).T
    return np.column_stack([(xmin + xmax) / 2, (ymin + ymax) / 2])


def _shares(error: np.ndarray) -> dict[str, float]:
    return {f"within_{int(m)}m": round(float(np.mean(error <= m)), 4) for m in WITHIN_M}


def _size(geoms: np.ndarray) -> np.ndarray:
    xmin, ymin, xmax, ymax = shapely.bounds(geoms).T
    return np.column_stack([xmax - xmin, ymax - ymin])


def _translated(geoms: np.ndarray, move: np.ndarray) -> np.ndarray:
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    return shapely.set_coordinates(np.array(geoms, dtype=object), coords + move[which])


def _to_metres(geoms: np.ndarray, frame: LocalFrame) -> np.ndarray:
    return shapely.transform(geoms, lambda c: np.column_stack(frame.to_metres(c[:, 0], c[:, 1])))


def _xy(points: np.ndarray) -> np.ndarray:
    return np.column_stack([shapely.get_x(points), shapely.get_y(points)])
