"""A generated district, its releases, and an attacker written apart from the pipeline's own
(``releases.relocation``), so that the figures a release report prints are checked against an
independent measurement: a person with the release files, a basemap of true building
footprints and k true landmarks.

The district and each release are built once per test session and shared by the attack tests."""
from __future__ import annotations

import atexit
import functools
import hashlib
import hmac
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyproj
import shapely
from fingerprint_attacks import exact_rooms_spec

KEY = bytes(range(32))
ROOMS = 20_000
SEED = 14
STRETCH = 0.08  # what the default field (100 m over 4 km) stretches a building by, at most, here


@functools.cache
def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="miliao-attacks-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def district() -> Path:
    """A ~20,000-room generated district as a corpus file."""
    from corpora.generator import generate_district
    from corpora.store import write_corpus

    path = _scratch() / "district.parquet"
    write_corpus(generate_district(seed=SEED, rooms=ROOMS), path)
    return path


def release(**changes) -> tuple[dict, pa.Table]:
    """The report and the released table of the rooms at exact geometry (exact_rooms_spec)
    with ``changes`` (spec fields)."""
    return _release(json.dumps(changes, sort_keys=True))


@functools.cache
def _release(changes: str) -> tuple[dict, pa.Table]:
    from releases.pipeline import ReleaseSpec, run_release

    spec = exact_rooms_spec()
    for name, value in json.loads(changes).items():
        spec[name] = {**spec[name], **value} if isinstance(value, dict) and name != "shift" else value
    spec = ReleaseSpec.from_dict(spec)
    out = _scratch() / f"release-{hashlib.sha256(changes.encode()).hexdigest()[:12]}"
    report = run_release(district(), spec, KEY, out)
    return report, pq.read_table(out / report["outputs"]["geoparquet"]["path"])


# --- truth: what the test knows and the attacker does not ------------------------------------------


def _pseudonyms(values: list[str]) -> list[str]:
    """The release's keyed pseudonyms, recomputed here: HMAC-SHA256 under the release's
    pseudonym subkey, 16 hex digits."""
    subkey = hmac.new(KEY, b"pseudonyms", hashlib.sha256).digest()
    return [hmac.new(subkey, v.encode(), hashlib.sha256).hexdigest()[:16] for v in values]


@functools.cache
def _raw_rooms() -> pa.Table:
    raw = pq.read_table(district(), columns=["unit_id", "kind", "building_id", "floor", "geometry"])
    raw = raw.filter(pc.equal(raw.column("kind"), "room"))
    return raw.append_column("pseudonym", pa.array(_pseudonyms(raw.column("unit_id").to_pylist())))


def true_room_geometry(released: pa.Table) -> np.ndarray:
    """The true (unshifted) footprint of each released room, found by its pseudonym."""
    raw = _raw_rooms()
    at = pc.index_in(released.column("unit_id"), value_set=raw.column("pseudonym")).to_numpy(zero_copy_only=False)
    assert not np.isnan(at.astype(float)).any(), "every released room comes from a raw room"
    return shapely.from_wkb(raw.column("geometry").take(pa.array(at.astype(np.int64))).to_numpy(zero_copy_only=False))


def true_floor_geometry(floors: pa.Table, rooms: pa.Table) -> np.ndarray:
    """The true outline of each released floor feature: the union of the true footprints of
    the released rooms (same key, same policy, room level) of its building and floor band."""
    truth = true_room_geometry(rooms)
    names = [f"{b}/F{int(f)}" for b, f in zip(rooms.column("building_id").to_pylist(),
                                               rooms.column("floor").to_pylist(), strict=True)]
    order = np.argsort(names, kind="stable")
    names = np.array(names, dtype=object)[order]
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    outlines = {names[s]: shapely.union_all(truth[order[s:e]]) for s, e in zip(starts, np.r_[starts[1:], len(names)],
                                                                                strict=True)}
    return np.array([outlines[u] for u in floors.column("unit_id").to_pylist()], dtype=object)


def basemap() -> tuple[np.ndarray, np.ndarray]:
    """What a web map shows: the true building footprints and roads (lon/lat)."""
    raw = pq.read_table(district(), columns=["kind", "geometry"])
    kind = raw.column("kind").to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkb(raw.column("geometry").to_numpy(zero_copy_only=False))
    return geoms[kind == "building"], geoms[kind == "road"]


# --- the independent attacker ---------------------------------------------------------------------


class Metres:
    """A transverse Mercator centred on the district (not the pipeline's plate carrée frame)."""

    def __init__(self, geoms: np.ndarray):
        lon, lat = shapely.get_coordinates(geoms).mean(axis=0)
        self._to = pyproj.Transformer.from_crs(
            "EPSG:4490", f"+proj=tmerc +lon_0={lon} +lat_0={lat} +ellps=GRS80 +units=m", always_xy=True
        )

    def __call__(self, geoms: np.ndarray) -> np.ndarray:
        return shapely.transform(geoms, lambda c: np.column_stack(self._to.transform(c[:, 0], c[:, 1])))

    def degrees(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._to.transform(xy[:, 0], xy[:, 1], direction="INVERSE")


def basemap_attack(released: np.ndarray, buildings: np.ndarray, footprints: np.ndarray, bound_m: float,
                   cell_of=None) -> np.ndarray:
    """Where the attacker puts each released polygon (its centroid, metres), from the polygons
    (metres), their released building_id, and the true footprints (metres).

    Each building's released polygons are united (closing the slivers that rounding leaves
    between them); each connected part of the union is a piece (a building torn by a
    piecewise-rigid shift falls into pieces). A piece is tried against
    every footprint whose centroid lies within the bound, aligned on each corner of their
    bounding boxes or box onto box, wherever it then lies inside the footprint; each try is refined by an
    affine map fitted to the corners within 2.5 m of a footprint corner (twice), and kept if it
    stretches no more than a published shift can. A try that pairs every corner of the
    footprint (and most of the piece's) places its piece; a piece that lost units to
    suppression (or was torn off) takes, among its tries that pair some corner, the one whose
    move is nearest the median move of the five nearest placed pieces, within 6 m; under a
    piecewise-rigid shift (``cell_of``: true metres to the published cells), nearest the move
    of any cell of placed pieces that the move keeps it in. A piece still unplaced goes inside
    the footprint of a placed piece of its building, off that piece. A polygon of a piece that matched nothing
    takes the move of the nearest piece that did."""
    centres = shapely.centroid(released)
    pieces, piece_of, piece_key = [], np.full(len(released), -1), []
    for key in np.unique(buildings):
        members = np.flatnonzero(buildings == key)
        distinct = np.unique(shapely.to_wkb(released[members]), return_index=True)[1]
        # Rounding leaves slivers between rooms whose walls met at a T: close them.
        grown = shapely.union_all(shapely.buffer(released[members[distinct]], 0.5, join_style="mitre"))
        for part in shapely.get_parts(grown):
            inside = members[shapely.contains_properly(part, centres[members])]
            piece_of[inside] = len(pieces)
            shrunk = shapely.buffer(part, -0.5, join_style="mitre")
            pieces.append(shapely.simplify(part if shapely.is_empty(shrunk) else shrunk, 0.6))
            piece_key.append(key)
    pieces = np.array(pieces, dtype=object)
    tree = shapely.STRtree(shapely.centroid(footprints))
    tries = [_tries(piece, footprints, tree.query(shapely.centroid(piece), predicate="dwithin",
                                                  distance=bound_m + 30.0)) for piece in pieces]
    maps, feet = np.full((len(pieces), 2, 3), np.nan), np.full(len(pieces), -1)
    for i, found in enumerate(tries):
        whole = [t for t in found if t[1]]
        if whole:
            maps[i], feet[i] = min(whole, key=lambda t: t[2])[::3][:2]
    placed = ~np.isnan(maps[:, 0, 0])
    if placed.any():
        anchor_xy = shapely.get_coordinates(shapely.centroid(pieces[placed]))
        anchor_move = np.einsum("nij,nj->ni", maps[placed, :, :2], anchor_xy) + maps[placed, :, 2] - anchor_xy
        if cell_of is not None:
            anchor_cell = [tuple(c) for c in cell_of(anchor_xy + anchor_move)]
            cell_move = {c: np.median(anchor_move[[a == c for a in anchor_cell]], axis=0) for c in set(anchor_cell)}
        for i in np.flatnonzero(~placed):
            xy = shapely.get_coordinates(shapely.centroid(pieces[i]))[0]
            if cell_of is None:
                near = [np.median(anchor_move[np.argsort(np.linalg.norm(anchor_xy - xy, axis=1))[:5]], axis=0)]
            else:
                near = [m for c, m in cell_move.items() if tuple(cell_of((xy + m)[None])[0]) == c]
            gaps = [min((np.linalg.norm(t[0][:, :2] @ xy + t[0][:, 2] - xy - m) for m in near), default=np.inf)
                    for t in tries[i]]
            if gaps and min(gaps) <= 6.0:
                maps[i], feet[i] = tries[i][int(np.argmin(gaps))][::3][:2]
    # Pieces of one building share its footprint: one still unplaced goes where it pairs most
    # corners inside its placed sibling's footprint, off the sibling.
    for i in np.flatnonzero(np.isnan(maps[:, 0, 0])):
        for j in np.flatnonzero(~np.isnan(maps[:, 0, 0]) & (np.array(piece_key) == piece_key[i])):
            sibling = shapely.transform(pieces[j], lambda c, m=maps[j]: c @ m[:, :2].T + m[:, 2])
            fitting = [t for t in tries[i] if t[3] == feet[j] and shapely.area(shapely.intersection(
                shapely.transform(pieces[i], lambda c, m=t[0]: c @ m[:, :2].T + m[:, 2]), sibling))
                <= 0.1 * shapely.area(pieces[i])]
            if fitting:
                maps[i], feet[i] = max(fitting, key=lambda t: t[4])[::3][:2]
                break
    xy = shapely.get_coordinates(centres)
    estimate = xy.copy()
    found = ~np.isnan(maps[:, 0, 0])
    known = (piece_of >= 0) & found[np.maximum(piece_of, 0)]
    m = maps[piece_of[known]]
    estimate[known] = np.einsum("nij,nj->ni", m[:, :, :2], xy[known]) + m[:, :, 2]
    if found.any() and (~known).any():
        piece_xy = shapely.get_coordinates(shapely.centroid(pieces[found]))
        move = np.einsum("nij,nj->ni", maps[found, :, :2], piece_xy) + maps[found, :, 2] - piece_xy
        nearest = np.linalg.norm(xy[~known, None, :] - piece_xy[None, :, :], axis=2).argmin(axis=1)
        estimate[~known] = xy[~known] + move[nearest]
    return estimate


def _tries(piece, footprints: np.ndarray, near: np.ndarray) -> list[tuple[np.ndarray, bool, float, int, int]]:
    """(map, pairs the footprint's corners, mean corner gap, footprint, corners paired) for
    each alignment of the piece's bounding box on the box of a footprint among ``near``
    (corner on corner, or box onto box) that puts the piece inside it."""
    src = shapely.get_coordinates(shapely.get_exterior_ring(piece))[:-1]
    found = []
    low, high = np.array(shapely.bounds(piece)).reshape(2, 2)
    for index in near:
        foot = footprints[index]
        dst = shapely.get_coordinates(shapely.get_exterior_ring(foot))[:-1]
        foot_low, foot_high = np.array(shapely.bounds(foot)).reshape(2, 2)
        scale = (foot_high - foot_low) / (high - low)
        starts = [(np.eye(2), foot_low * (1 - c) + foot_high * c - (low * (1 - c) + high * c))
                  for c in (np.array([0, 0]), np.array([1, 0]), np.array([0, 1]), np.array([1, 1]))]
        if np.abs(scale - 1).max() <= STRETCH:  # box onto box, if a shift could stretch it so
            starts.append((np.diag(scale), foot_low - scale * low))
        for linear, move in starts:
            moved = shapely.transform(piece, lambda c, a=linear, t=move: c @ a.T + t)
            if shapely.area(shapely.intersection(moved, foot)) < 0.9 * shapely.area(moved):
                continue
            for _ in range(2):
                mapped = src @ linear.T + move
                gap = np.linalg.norm(mapped[:, None, :] - dst[None, :, :], axis=2)
                pair = gap.min(axis=1) <= 2.5
                if pair.sum() >= 3:
                    design = np.c_[src[pair], np.ones(pair.sum())]
                    solution, *_ = np.linalg.lstsq(design, dst[gap.argmin(axis=1)][pair], rcond=None)
                    linear, move = solution[:2].T, solution[2]
                elif pair.any():
                    move = move + (dst[gap.argmin(axis=1)][pair] - mapped[pair]).mean(axis=0)
            if np.abs(linear - np.eye(2)).max() > STRETCH:
                continue  # no published shift stretches that much
            mapped = src @ linear.T + move
            gap = np.linalg.norm(mapped[:, None, :] - dst[None, :, :], axis=2)
            pair = gap.min(axis=1) <= 1.0
            if not pair.any():
                continue
            every = pair.mean() >= 0.8 and (gap.min(axis=0) <= 1.0).all()  # all the footprint's corners
            found.append((np.c_[linear, move], bool(every), float(gap.min(axis=1)[pair].mean()), int(index),
                          int(pair.sum())))
    return found


def within(estimate: np.ndarray, truth: np.ndarray, metres: float) -> float:
    return float(np.mean(np.linalg.norm(estimate - truth, axis=1) <= metres))


def thin_plate(src: np.ndarray, dst: np.ndarray):
    """A thin-plate spline with its affine part from src to dst (n >= 3), solved directly."""
    n = len(src)
    r = np.linalg.norm(src[:, None] - src[None], axis=2)
    kernel = np.where(r > 0, r**2 * np.log(np.where(r > 0, r, 1.0)), 0.0)
    poly = np.c_[np.ones(n), src]
    system = np.block([[kernel, poly], [poly.T, np.zeros((3, 3))]])
    coef = np.linalg.lstsq(system, np.r_[dst, np.zeros((3, 2))], rcond=None)[0]

    def apply(points: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(points[:, None] - src[None], axis=2)
        k = np.where(d > 0, d**2 * np.log(np.where(d > 0, d, 1.0)), 0.0)
        return k @ coef[:n] + np.c_[np.ones(len(points)), points] @ coef[n:]

    return apply


def landmark_attack(true: np.ndarray, seen: np.ndarray, k: int, *, trials: int, seed: int,
                    radius_m: float = 2000.0, targets: int = 200) -> float:
    """Median error (metres) of an attacker who knows the true and released positions of k
    released units within radius_m of a random released unit, fits the shift (a constant
    offset for k < 3, a thin-plate spline for more) and maps other released units back."""
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(trials):
        near = np.flatnonzero(np.linalg.norm(true - true[rng.integers(len(true))], axis=1) <= radius_m)
        if len(near) <= k:
            continue
        drawn = rng.permutation(near)[: k + targets]
        marks, rest = drawn[:k], drawn[k:]
        if k < 3:
            guess = seen[rest] + (true[marks] - seen[marks]).mean(axis=0)
        else:
            guess = thin_plate(seen[marks], true[marks])(seen[rest])
        errors.append(np.linalg.norm(guess - true[rest], axis=1))
    return float(np.median(np.concatenate(errors)))
