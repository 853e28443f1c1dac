"""Fingerprint (release step 5): a per-recipient keyed perturbation of a conditional-class
release, so that a leaked subset names the recipient it came from, even when the recipient
tries to remove it from their own copy, or two or three recipients pool their copies.

Groups: marks that agree on shared vertices
-------------------------------------------
Rooms tile floors and floors stack, so units share vertices in the release base. Marking
units one by one would make those vertices disagree in a copy by the difference of two marks,
and a recipient could read and undo the marks from their own copy. So a mark moves a whole
*group* rigidly: the connected components of units joined by

- the same ``building_id`` (the release's pseudonym: a building's rooms, floors, footprint
  and parcel move together, so a leaked room decodes through its building whichever of its
  stacked twins it is matched to);
- a shared vertex on the release grid (segments that meet at their ends, rooms of a building
  whose ``building_id`` was not released);
- vertices of two units closer than ``NEAR_STEPS`` grid steps (2 steps per axis is the most
  two marks can pull a shared vertex apart, so every place where a recipient could see two
  marks disagree is inside one group).

A unit that touches nothing is a group on its own. Groups are found from the release itself
(:class:`MarkGroups`, whole-array, batch by batch, deterministic), and a group's key is the
smallest of its members' labels ("b:<building_id>" or "u:<unit_id>"), so every batch and every
recipient's package, and the detector, agree on it. The grouping carries no information beyond
the released geometry and ``building_id``, and nothing of it is added to the release files.

Code: a Tardos code with symmetric scoring
------------------------------------------
Each group carries one symbol of a 4-ary code: the group moves by one grid step east or west
and one step north or south, ``(dx, dy)`` in {-1, +1}^2. Per group and axis a bias ``p`` is
drawn from ``{BIAS, 1 - BIAS}`` (Nuida et al.'s discrete bias distribution for 3 and 4
colluders, BIAS = (1 - 1/sqrt 3) / 2), keyed by the release's fingerprint code key
(:func:`code_key`), and a recipient's bit for that axis is 1 (a step in the positive
direction) with probability ``p``, keyed by the recipient's key. Both are PRFs of (key, group
key): nothing needs storing, a group's symbol does not depend on the batch or the other units,
and recipients never learn the biases.

So every vertex moves by at most one step per axis (``|offset| <= q * sqrt 2``), inside the
precision the release already grants; the package lies exactly on the release grid (bit for
bit what the quantizer would write), so one copy shows no off-grid residue, and no two units
of one copy disagree where the base has them agree.

The release grid: longitude and latitude are whole multiples of ``grid_step_deg(q)`` degrees,
a step that is at most q metres on the ground in both axes anywhere (q metres of the longest
degree on the CGCS2000 ellipsoid; around Shanghai 0.85 q east-west and 0.99 q north-south).

Detection
---------
Leaked geometries carry no ids. Each is described by its bounding box (centre and size, in
grid steps), which a rigid move shifts and leaves the same size, and matched to the nearest
base unit within ``MATCH_RADIUS_STEPS`` in (centre, size); it is left out when a unit of
another group is as near. Stacked twins are one group, so they never make a unit ambiguous.
A leak moved as a whole is put back first: if fewer than half its units match in place, the
whole-step translation most of them agree with (within ``REGISTRATION_RADIUS_STEPS``, about
110 m at 0.5 m precision) is taken back; and once 32 groups or more match, their mean move
rounded to whole steps (marks average out to nothing over many groups) is taken back too.
Each matched group's observed move ``o`` is the mean of its leaked units' moves, clipped to
[-1, 1] per axis; it is turned into soft indicators of the 4 symbols,
``w_k = prod_axis (1 + o_axis k_axis) / 2``, which equal 1 for the symbol seen on an exact
copy, split the weight where two colluders' copies were averaged, and are linear in each axis,
so symmetric noise (re-jittering, rounding) only shrinks them.

A candidate holding symbol ``l`` in group g scores ``T_g(l) = sum_k w_k V_g(k, l)`` with the
symmetric Tardos score of Skoric et al.: ``V_g(k, l) = sqrt((1 - P_k) / P_k)`` if l = k and
``-sqrt(P_k / (1 - P_k))`` otherwise, ``P_k`` the chance of symbol k in group g. A candidate's
score is the sum over matched groups.

False accusations
-----------------
Take an innocent candidate: the leak was made without their key. Given the biases and the
leak (which fix every ``T_g``), their symbols are independent across groups with the known
chances ``P``, so their score is a sum of independent bounded variables with a known moment
generating function, and the Chernoff bound ``P[S >= z] <= exp(K(lam) - lam z)`` (K the exact
cumulant generating function, lam >= 0 optimised) holds whatever the leaker did. The threshold
``z*`` is where that bound reaches ``alpha / m`` for m candidates; everyone scoring at least
``z*`` is accused, so by the union bound the chance of accusing any innocent candidate is at
most alpha (default 1e-6), however many candidates, whoever made the leak (a candidate, an
outsider, the unfingerprinted base), and whatever they did to it: the matching, registration
and soft indicators depend on the leak and the base only. ``Detection.p_value`` is that bound at
the best score. A leak that covers too few groups yields no accusation rather than a wrong one.

What the mark survives, and what it does not, is measured by the attack suite
(tests/releases/attacks/test_fingerprint_attacks.py) and bench/fingerprint.py; the README's
leak-tracing paragraph gives the figures. In short it survives subsets, reordering, dropped
attributes, reprojection, rounding to 1 m, re-jittering within the precision, stripping by
vertex consistency, and averaging or interleaving by 2 recipients; it does not survive a leak
that covers few groups (a few buildings), per-building moves larger than the precision,
rounding much coarser than it, or a recipient who holds building footprints accurate to about
0.1 m (they can fit the release's published shift and read each building's mark off the
residual), and 3 or more colluders are named only in larger releases.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import numbers
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pyproj
import shapely
from scipy.optimize import brentq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from corpora.schema import STORAGE_CRS
from releases.columns import grid_step_deg

DEFAULT_ALPHA = 1e-6
BIAS = (1 - 1 / math.sqrt(3)) / 2  # Nuida et al. (2009): the optimal discrete bias for c = 3, 4
NEAR_STEPS = 3.0  # > 2 * sqrt(2): the farthest two marks can pull a shared vertex apart
MATCH_RADIUS_STEPS = 4.5  # a mark, a re-jitter and rounding to twice the precision fit inside
REGISTRATION_RADIUS_STEPS = 256  # a leak moved as a whole by up to this many steps is put back
REGISTRATION_SAMPLE = 400  # leaked units that vote on the registration
MIN_GROUPS_TO_RECENTRE = 32  # enough groups that their marks' mean is well under half a step

_DOMAIN_CODE = b"miliao/release/fingerprint/v2/code"
_DOMAIN_BIAS = b"miliao/release/fingerprint/v2/bias"
_DOMAIN_SYMBOL = b"miliao/release/fingerprint/v2/symbol"
_ON_GRID_TOLERANCE = 1e-3  # in steps: float noise of a quantized coordinate is far below this
_GRID_LIMIT = 2**31  # grid coordinates are packed two to an int64

# The 4 symbols as moves in grid steps; symbol index = bit_x + 2 * bit_y.
SYMBOLS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Detection:
    """The verdict on one leak. ``accused``: every candidate whose score reached
    ``threshold`` (each one innocent with probability at most alpha / len(candidates)),
    best first; ``recipient`` the best of them, unless two tie. ``p_value`` bounds the chance
    that a given innocent candidate scores as well as the best one did, and
    ``false_accusation_bound`` = min(1, m * p_value) that any of the m would. ``threshold``
    is None when the leak covers too few groups for anyone to reach alpha."""

    recipient: str | None
    accused: list[str]
    p_value: float
    matched_units: int
    matched_groups: int
    scores: dict[str, float]
    threshold: float | None
    false_accusation_bound: float
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def code_key(release_key: bytes) -> bytes:
    """The release's fingerprint code key (the per-group biases), from the release key."""
    _check_key(release_key, "release_key")
    return hmac.digest(release_key, _DOMAIN_CODE, "sha256")


# --- groups ------------------------------------------------------------------------------


class MarkGroups:
    """The mark groups of a release, found batch by batch: ``add`` each batch of units in
    file order, then ``finish`` gives each unit's group. Memory holds each distinct (owner,
    vertex) pair once, where an owner is a building id or a unit without one, so stacked
    floors cost nothing; geometries are not kept."""

    def __init__(self, *, precision_m: float):
        self.step = grid_step_deg(precision_m)
        if 180 / self.step >= _GRID_LIMIT:
            raise ValueError(f"precision_m {precision_m!r} is too fine for the fingerprint grid")
        self._unit_owners: list[np.ndarray] = []  # per unit: its owner, an index into the batch's owners
        self._owner_labels: list[np.ndarray] = []  # per batch: its owners' labels
        self._owners: list[np.ndarray] = []  # per (owner, vertex) pair: the batch's owner index
        self._vertices: list[np.ndarray] = []  # per pair: the packed grid vertex

    def add(self, geoms, unit_ids, building_ids=None) -> None:
        geoms = _geometries(geoms, "geoms")
        labels = _owner_labels(
            _strings(unit_ids, len(geoms), "unit_ids"),
            None if building_ids is None else _strings(building_ids, len(geoms), "building_ids", nulls=True),
        )
        owner_labels, owner = np.unique(labels, return_inverse=True)
        coords, index = shapely.get_coordinates(geoms, return_index=True)
        if not np.isfinite(coords).all():
            raise ValueError("geoms hold a coordinate that is not a finite number")
        vertices = _pack(np.rint(coords / self.step).astype(np.int64))
        distinct, vertex = np.unique(vertices, return_inverse=True)
        pairs = np.unique(owner[index] * len(distinct) + vertex)
        self._unit_owners.append(owner.astype(np.int32))
        self._owner_labels.append(owner_labels)
        self._owners.append(pairs // max(len(distinct), 1))
        self._vertices.append(distinct[pairs % max(len(distinct), 1)])

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(group index per unit, in the order added; the groups' keys)."""
        if not self._unit_owners:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        owner_labels, inverse = np.unique(np.concatenate(self._owner_labels), return_inverse=True)
        starts = np.cumsum([0] + [len(t) for t in self._owner_labels])
        global_owner = [inverse[starts[i]:starts[i + 1]] for i in range(len(self._owner_labels))]
        owners = np.concatenate([g[o] for g, o in zip(global_owner, self._owners)])
        vertices, vertex = np.unique(np.concatenate(self._vertices), return_inverse=True)
        n_owners, n_vertices = len(owner_labels), len(vertices)

        near = np.empty((0, 2), dtype=np.int64)
        if n_vertices > 1:
            grid = _unpack(vertices).astype(np.float64)
            near = cKDTree(grid).query_pairs(NEAR_STEPS, output_type="ndarray")
        rows = np.concatenate([owners, n_owners + near[:, 0]])
        cols = np.concatenate([n_owners + vertex, n_owners + near[:, 1]])
        size = n_owners + n_vertices
        graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
        _, component = connected_components(graph, directed=False)
        # A group's key: its smallest owner label (owner labels are sorted, so the first owner).
        first = np.full(component.max() + 1, n_owners, dtype=np.int64)
        np.minimum.at(first, component[:n_owners], np.arange(n_owners))
        group_of_owner = first[component[:n_owners]]
        used, group_of_owner = np.unique(group_of_owner, return_inverse=True)
        unit_owner = np.concatenate([g[o] for g, o in zip(global_owner, self._unit_owners)])
        return group_of_owner[unit_owner], owner_labels[used].astype(object)


def mark_groups(geoms, unit_ids, building_ids=None, *, precision_m: float) -> np.ndarray:
    """Each unit's mark group key (see the module docstring), for one array of units."""
    groups = MarkGroups(precision_m=precision_m)
    groups.add(geoms, unit_ids, building_ids)
    index, keys = groups.finish()
    return keys[index]


# --- embedding ----------------------------------------------------------------------------


def embed(
    geoms: np.ndarray, group_keys: np.ndarray, recipient_key: bytes, *, code_key: bytes, precision_m: float
) -> np.ndarray:
    """The recipient's package: each unit of the (grid-quantized) base moved rigidly by its
    group's keyed symbol, one grid step per axis. Refuses a base that is not on the release
    grid, since the mark would then be visible (and removable) as an off-grid residue."""
    step = grid_step_deg(precision_m)
    geoms = _geometries(geoms, "geoms")
    group_keys = _strings(group_keys, len(geoms), "group_keys")
    _check_key(recipient_key, "recipient_key")
    _check_key(code_key, "code_key")

    cells = shapely.get_coordinates(geoms) / step
    grid = np.rint(cells)
    off_grid = np.abs(cells - grid).max(initial=0.0)
    if off_grid > _ON_GRID_TOLERANCE:
        raise ValueError(
            f"geoms are not on the release grid for precision_m={precision_m} (a coordinate is "
            f"{off_grid:.3f} steps off): quantize to multiples of grid_step_deg(precision_m) first"
        )
    groups, group = np.unique(group_keys, return_inverse=True)
    symbols = symbols_of(recipient_key, groups, biases(code_key, groups))
    grid += np.repeat(SYMBOLS[symbols[group]], shapely.get_num_coordinates(geoms), axis=0)
    return shapely.set_coordinates(geoms.copy(), grid * step)


def biases(code_key: bytes, group_keys) -> np.ndarray:
    """(groups, 2): each group's chance of a positive step on each axis, BIAS or 1 - BIAS."""
    key = hmac.digest(code_key, _DOMAIN_BIAS, "sha256")
    groups = np.asarray(group_keys).tolist()
    digests = b"".join([hashlib.blake2b(g.encode(), key=key, digest_size=1).digest() for g in groups])
    bits = np.frombuffer(digests, dtype=np.uint8)[:, None] >> np.array([0, 1]) & 1
    return np.where(bits == 1, 1 - BIAS, BIAS)


def symbols_of(recipient_key: bytes, group_keys, bias: np.ndarray) -> np.ndarray:
    """The recipient's symbol (0..3, an index into SYMBOLS) in each group."""
    keyed = hashlib.blake2b(key=hmac.digest(recipient_key, _DOMAIN_SYMBOL, "sha256"), digest_size=8)
    digests = []
    for group in np.asarray(group_keys).tolist():
        state = keyed.copy()  # the keyed state is built once: a third faster per group
        state.update(group.encode())
        digests.append(state.digest())
    digests = b"".join(digests)
    uniform = np.frombuffer(digests, dtype="<u4").reshape(-1, 2) / 2.0**32
    bits = (uniform < bias).astype(np.int64)
    return bits[:, 0] + 2 * bits[:, 1]


# --- detection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What a leak shows, before any candidate is looked at: the matched groups (their keys,
    and their rows in the detector's group table), and for each the score ``table[g, l]`` of
    a candidate holding symbol l and the chance ``probs[g, l]`` of symbol l for an innocent
    one."""

    groups: np.ndarray
    rows: np.ndarray
    table: np.ndarray
    probs: np.ndarray
    matched_units: int

    def scores(self, symbols: np.ndarray) -> np.ndarray:
        """Scores of candidates holding ``symbols`` (..., groups) in the matched groups."""
        return self.table[np.arange(len(self.groups)), symbols].sum(axis=-1)

    def log_tail(self, score: float) -> float:
        """log of the Chernoff bound on P[an innocent candidate scores >= score]."""
        if len(self.groups) == 0 or score <= 0:
            return 0.0
        top, at_top = self._top()
        if score > top.sum() * (1 + 1e-12) + 1e-9:
            return -math.inf
        hi = _bracket(lambda lam: self._mean(lam) - score)
        if hi is None:  # the limit lam -> infinity: every group at its top score
            return float(np.log(at_top).sum())
        lam = brentq(lambda lam: self._mean(lam) - score, 0.0, hi, xtol=1e-12)
        return min(0.0, self._cgf(lam) - lam * score)  # any lam >= 0 gives a valid bound

    def threshold(self, level: float) -> float | None:
        """The least score whose Chernoff bound is at most ``level``; None if none is (the
        leak covers too few groups)."""
        if len(self.groups) == 0:
            return None
        target = -math.log(level)
        _, at_top = self._top()
        if -np.log(at_top).sum() <= target:
            return None

        def excess(lam):
            return lam * self._mean(lam) - self._cgf(lam) - target

        hi = _bracket(excess)
        if hi is None:
            return None
        lam = brentq(excess, 0.0, hi, xtol=1e-12)
        while excess(lam) < 0:  # step to where the bound is at most level, so the test stays rigorous
            lam = lam * (1 + 1e-9) + 1e-12
        return float(self._mean(lam))

    def _top(self):
        top = self.table.max(axis=1)
        at_top = np.where(self.table >= top[:, None] - 1e-12, self.probs, 0.0).sum(axis=1)
        return top, at_top

    def _cgf(self, lam: float) -> float:
        """K(lam) = log E[exp(lam S)] for an innocent candidate's score S."""
        top = self.table.max(axis=1)
        tilted = self.probs * np.exp(lam * (self.table - top[:, None]))
        return float((lam * top + np.log(tilted.sum(axis=1))).sum())

    def _mean(self, lam: float) -> float:
        """K'(lam): the mean score under the exponentially tilted distribution."""
        top = self.table.max(axis=1)
        tilted = self.probs * np.exp(lam * (self.table - top[:, None]))
        return float(((tilted * self.table).sum(axis=1) / tilted.sum(axis=1)).sum())


def _bracket(increasing, start: float = 1.0, limit: float = 1e6) -> float | None:
    """The first of start, 2 start, 4 start, ... where ``increasing`` is >= 0 (None past limit)."""
    hi = start
    while increasing(hi) < 0:
        hi *= 2
        if hi > limit:
            return None
    return hi


class Detector:
    """Leak detection against one release base, prepared once for many leaks."""

    def __init__(self, base_geoms, base_group_keys, *, code_key: bytes, precision_m: float):
        self.step = grid_step_deg(precision_m)
        base_geoms = _geometries(base_geoms, "base_geoms")
        keys = _strings(base_group_keys, len(base_geoms), "base_group_keys")
        _check_key(code_key, "code_key")
        described = _describe(base_geoms, self.step)
        finite = np.isfinite(described).all(axis=1)
        self.groups, group = np.unique(keys[finite], return_inverse=True)
        # Stacked twins (same box, same group) are one target: they can never make a leaked unit ambiguous.
        rows = np.unique(np.column_stack([described[finite], group]), axis=0)
        self._described, self._group = rows[:, :4], rows[:, 4].astype(np.int64)
        self._tree = cKDTree(self._described) if len(rows) else None
        self._wide = None  # the tree for registration, built when first needed
        self.bias = biases(code_key, self.groups)
        self._symbols: dict[bytes, np.ndarray] = {}

    def symbols(self, recipient_key: bytes) -> np.ndarray:
        """The recipient's symbol in every group of the base."""
        if recipient_key not in self._symbols:
            if len(self._symbols) >= 4096:
                self._symbols.clear()
            self._symbols[recipient_key] = symbols_of(recipient_key, self.groups, self.bias)
        return self._symbols[recipient_key]

    def observe(self, leaked_geoms, *, leaked_crs: str | pyproj.CRS | None = None) -> Observation:
        leaked = _geometries(leaked_geoms, "leaked_geoms")
        if leaked_crs is not None:
            leaked = _to_storage_crs(leaked, leaked_crs)
        described = _describe(leaked, self.step)
        described = described[np.isfinite(described).all(axis=1)]
        if self._tree is None or len(described) == 0:
            nothing = np.empty((0, 4))
            return Observation(np.empty(0, dtype=object), np.empty(0, np.int64), nothing, nothing, 0)
        matched, target = self._match(described)
        if matched.sum() < len(described) / 2:  # moved as a whole? put it back and match again
            described[:, :2] -= self._registration(described)
            matched, target = self._match(described)
        rows, moved = self._group_moves(described, matched, target)
        if len(rows) >= MIN_GROUPS_TO_RECENTRE:
            # Marks average out over many groups (each axis is +1 or -1 step with equal
            # chance), so a whole-step mean is a move of the whole leak: take it back.
            shift = np.rint(moved.mean(axis=0))
            if shift.any():
                described[:, :2] -= shift
                matched, target = self._match(described)
                rows, moved = self._group_moves(described, matched, target)
        table, probs = _score_table(np.clip(moved, -1.0, 1.0), self.bias[rows])
        return Observation(self.groups[rows], rows, table, probs, int(matched.sum()))

    def _group_moves(self, described, matched, target) -> tuple[np.ndarray, np.ndarray]:
        """(matched groups' rows, each group's mean move over its matched leaked units)."""
        moves = described[matched, :2] - self._described[target, :2]
        rows, group = np.unique(self._group[target], return_inverse=True)
        count = np.maximum(np.bincount(group, minlength=len(rows)), 1)
        moved = np.column_stack([np.bincount(group, moves[:, a], minlength=len(rows)) for a in (0, 1)])
        return rows, moved / count[:, None]

    def detect(
        self,
        leaked_geoms,
        candidates: dict[str, bytes],
        *,
        leaked_crs: str | pyproj.CRS | None = None,
        alpha: float = DEFAULT_ALPHA,
    ) -> Detection:
        _check_candidates(candidates)
        _check_alpha(alpha)
        return self.decide(self.observe(leaked_geoms, leaked_crs=leaked_crs), candidates, alpha=alpha)

    def decide(
        self, observation: Observation, candidates: dict[str, bytes], *, alpha: float = DEFAULT_ALPHA
    ) -> Detection:
        """The verdict on an observation (of this detector) for these candidates."""
        _check_candidates(candidates)
        _check_alpha(alpha)
        names = list(candidates)
        symbols = np.stack([self.symbols(candidates[r])[observation.rows] for r in names])
        scores = observation.scores(symbols)
        threshold = observation.threshold(alpha / len(names))
        order = np.argsort(-scores, kind="stable")
        accused = [names[i] for i in order if threshold is not None and scores[i] >= threshold]
        best = int(order[0])
        unique_best = np.count_nonzero(scores == scores[best]) == 1
        p_best = math.exp(observation.log_tail(float(scores[best])))
        return Detection(
            recipient=names[best] if accused and unique_best else None,
            accused=accused,
            p_value=p_best,
            matched_units=observation.matched_units,
            matched_groups=len(observation.groups),
            scores={name: round(float(s), 6) for name, s in zip(names, scores)},
            threshold=threshold,
            false_accusation_bound=min(1.0, len(names) * p_best),
            alpha=alpha,
        )

    def _match(self, described: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which leaked units matched, their base rows): the nearest base unit within
        MATCH_RADIUS_STEPS, unless a unit of another group is within it too."""
        distance, nearest = self._tree.query(described, k=2, distance_upper_bound=MATCH_RADIUS_STEPS)
        last = len(self._group) - 1
        first_group = self._group[np.minimum(nearest[:, 0], last)]
        second_group = self._group[np.minimum(nearest[:, 1], last)]
        matched = np.isfinite(distance[:, 0]) & (np.isinf(distance[:, 1]) | (first_group == second_group))
        return matched, nearest[matched, 0]

    def _registration(self, described: np.ndarray) -> np.ndarray:
        """The whole-step translation that most leaked units agree with: each of a sample of
        leaked units votes for its move to every base unit of about its size (within 2 steps)
        within REGISTRATION_RADIUS_STEPS, and the translation with the most votes within a
        step of it wins (a mark moves a unit by a step either way). The sample is chosen by
        the units' own boxes, so the result does not depend on the leak's order."""
        radius = REGISTRATION_RADIUS_STEPS
        scale = np.array([1.0, 1.0, radius / 2.0, radius / 2.0])
        if self._wide is None:
            self._wide = cKDTree(self._described * scale)
        order = np.lexsort(described.T[::-1])
        pick = np.unique(np.linspace(0, len(order) - 1, min(len(order), REGISTRATION_SAMPLE)).astype(int))
        sample = described[order[pick]]
        near = self._wide.query_ball_point(sample * scale, r=radius, p=np.inf, return_sorted=False)
        counts = np.array([len(n) for n in near], dtype=np.int64)
        if counts.sum() == 0:
            return np.zeros(2)
        voter = np.repeat(np.arange(len(sample)), counts)
        target = np.fromiter((i for n in near for i in n), dtype=np.int64, count=int(counts.sum()))
        moves = np.rint(sample[voter, :2] - self._described[target, :2]).astype(np.int64)
        return _box_mode(moves, radius=radius).astype(np.float64)


def _box_mode(moves: np.ndarray, *, radius: int) -> np.ndarray:
    """The whole-step move (within radius) with the most of ``moves`` within one step of it
    per axis; (0, 0) when there are none. Ties go to the smallest move (x, then y)."""
    inside = (np.abs(moves) <= radius).all(axis=1)
    if not inside.any():
        return np.zeros(2, dtype=np.int64)
    width = 2 * radius + 3
    cells, counts = np.unique((moves[inside, 0] + radius + 1) * width + moves[inside, 1] + radius + 1,
                              return_counts=True)
    steps = np.array([dx * width + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    centres = np.unique((cells[:, None] + steps).ravel())  # the cells a move counts for
    around = np.zeros(len(centres), dtype=np.int64)
    for step in steps:
        at = np.minimum(np.searchsorted(cells, centres + step), len(cells) - 1)
        around += np.where(cells[at] == centres + step, counts[at], 0)
    best = centres[np.argmax(around)]
    return np.array([best // width - radius - 1, best % width - radius - 1], dtype=np.int64)


def detect(
    leaked_geoms: np.ndarray,
    base_geoms: np.ndarray,
    base_group_keys: np.ndarray,
    candidates: dict[str, bytes],
    *,
    code_key: bytes,
    precision_m: float,
    leaked_crs: str | pyproj.CRS | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Detection:
    """Which candidates (recipient id -> recipient key) the leak came from, accused only
    where the Chernoff bound clears alpha / len(candidates); ``leaked_crs`` is the leak's CRS
    when it is not the storage CRS."""
    _check_candidates(candidates)
    _check_alpha(alpha)
    detector = Detector(base_geoms, base_group_keys, code_key=code_key, precision_m=precision_m)
    return detector.detect(leaked_geoms, candidates, leaked_crs=leaked_crs, alpha=alpha)


def _score_table(observed: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(table, probs) for groups with observed moves ``observed`` (G, 2) in [-1, 1] and
    biases ``bias`` (G, 2): the symmetric Tardos score against soft symbol indicators."""
    probs = np.prod(np.where(SYMBOLS[None] > 0, bias[:, None, :], 1 - bias[:, None, :]), axis=2)
    indicators = np.prod((1 + observed[:, None, :] * SYMBOLS[None]) / 2, axis=2)
    match = np.sqrt((1 - probs) / probs)
    mismatch = -np.sqrt(probs / (1 - probs))
    # table[g, l] = sum_k w[g, k] * (match[g, k] if k == l else mismatch[g, k])
    table = (indicators * mismatch).sum(axis=1, keepdims=True) + indicators * (match - mismatch)
    return table, probs


def _describe(geoms: np.ndarray, step: float) -> np.ndarray:
    """(n, 4): bounding-box centre x, y and width, height, in grid steps (NaN when empty)."""
    bounds = shapely.bounds(geoms) / step
    return np.column_stack([(bounds[:, :2] + bounds[:, 2:]) / 2, bounds[:, 2:] - bounds[:, :2]])


def _owner_labels(unit_ids: np.ndarray, building_ids: np.ndarray | None) -> np.ndarray:
    units = np.char.add("u:", unit_ids.astype(str))
    if building_ids is None:
        return units
    present = np.array([isinstance(b, str) and b != "" for b in building_ids.tolist()], dtype=bool)
    if not present.any():
        return units
    buildings = np.char.add("b:", np.where(present, building_ids, "").astype(str))
    return np.where(present, buildings, units)


def _pack(grid: np.ndarray) -> np.ndarray:
    if len(grid) and np.abs(grid).max() >= _GRID_LIMIT:
        raise ValueError("geoms lie outside the fingerprint grid's range (are they in degrees?)")
    return grid[:, 0] * 2**32 + (grid[:, 1] + _GRID_LIMIT)


def _unpack(packed: np.ndarray) -> np.ndarray:
    y = packed % 2**32 - _GRID_LIMIT
    return np.column_stack([(packed - (y + _GRID_LIMIT)) // 2**32, y])


def _to_storage_crs(geoms: np.ndarray, crs: str | pyproj.CRS) -> np.ndarray:
    try:
        transformer = _transformer_to_storage(crs if isinstance(crs, str) else pyproj.CRS(crs).to_wkt())
    except pyproj.exceptions.CRSError as exc:
        raise ValueError(f"leaked_crs is not a CRS pyproj knows: {crs!r}") from exc
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=16)
def _transformer_to_storage(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)


def _geometries(value, name: str) -> np.ndarray:
    geoms = np.asarray(value, dtype=object)
    if geoms.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of geometries, not shape {geoms.shape}")
    return geoms


def _strings(value, count: int, name: str, *, nulls: bool = False) -> np.ndarray:
    keys = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if keys.shape != (count,):
        raise ValueError(f"{name} must hold one value per geometry: shape {keys.shape}, {count} geometries")
    if keys.dtype.kind == "U":
        return keys
    if keys.dtype.kind != "O" or not all(
        isinstance(k, str) or (nulls and k is None) for k in keys.tolist()
    ):
        raise ValueError(f"{name} must hold strings{' or None' if nulls else ''}, not {keys.dtype}")
    return keys


def _check_key(key, name: str) -> None:
    if not isinstance(key, bytes) or not key:
        raise ValueError(f"{name} must be a non-empty bytes key")


def _check_candidates(candidates) -> None:
    if not isinstance(candidates, dict) or not candidates:
        raise ValueError("candidates must name at least one recipient")
    for recipient, key in candidates.items():
        _check_key(key, f"candidates[{recipient!r}]")


def _check_alpha(alpha) -> None:
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
