"""What recipients do to a fingerprinted copy before they leak it, with nothing but their own
copies (and, when they collude, each other's), and the harness that measures tracing after
each: shared by the attack suite (test_fingerprint_attacks.py) and bench/fingerprint.py, so
the figures the README prints are the ones the suite asserts.

A copy is an array of geometries, one per row of the release; every attack returns a copy of
the same rows. ``leaked_rows`` picks the leaked share of units, shuffled, geometry only. Plain Python: the release is built by the real pipeline and the
copies by the real download path (access.packages), without Django.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
import pyproj
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

STORAGE_CRS = "EPSG:4490"
METRIC_CRS = "EPSG:4549"  # CGCS2000 / 3-degree Gauss-Krüger CM 120E: metres around Shanghai
WEB_CRS = "EPSG:3857"
SIZES = (0.01, 0.05, 0.10)
RELEASE_KEY = bytes(range(32))


# --- single-recipient attacks --------------------------------------------------------------


def leaked_rows(units: int, rng: np.random.Generator, fraction: float, *, shuffle: bool = True) -> np.ndarray:
    """Which rows leak: a random share of the units, in file order or shuffled (ids and
    attributes are not passed on, only the geometries of these rows)."""
    rows = rng.choice(units, size=max(1, round(fraction * units)), replace=False)
    return rows if shuffle else np.sort(rows)


def project(geoms: np.ndarray, source: str, target: str) -> np.ndarray:
    transformer = _transformer(source, target)
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=8)
def _transformer(source: str, target: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def round_metric(copy: np.ndarray, metres: float) -> np.ndarray:
    """Coordinates rounded to ``metres`` in a metric projection, and back to CGCS2000."""
    projected = project(copy, STORAGE_CRS, METRIC_CRS)
    rounded = shapely.transform(projected, lambda xy: np.rint(xy / metres) * metres)
    return project(rounded, METRIC_CRS, STORAGE_CRS)


def round_degrees(copy: np.ndarray, step_deg: float) -> np.ndarray:
    """Coordinates rounded to multiples of ``step_deg`` degrees: the grid of a coarser
    precision, which the release grid nests in (the worst case: a mark can round away)."""
    return shapely.transform(copy, lambda xy: np.rint(xy / step_deg) * step_deg)


def jitter(
    copy: np.ndarray, rng: np.random.Generator, step_deg: float, groups: np.ndarray | None = None
) -> np.ndarray:
    """Every unit (or every unit of a group, e.g. a building) moved by its own random whole
    grid step, one of the 9 in {-1, 0, 1}^2: at most sqrt(2) steps, inside the precision, and
    still exactly on the release grid, so the copy looks untouched."""
    keys = np.arange(len(copy)) if groups is None else np.unique(groups, return_inverse=True)[1]
    moves = rng.integers(-1, 2, size=(keys.max() + 1, 2))[keys] * step_deg
    coords = shapely.get_coordinates(copy) + np.repeat(moves, shapely.get_num_coordinates(copy), axis=0)
    return shapely.set_coordinates(copy.copy(), coords)


def strip_by_vertex_consistency(copy: np.ndarray, step_deg: float) -> tuple[np.ndarray, dict]:
    """The outside evaluator's single-copy attack. Vertices that coincide in the base (rooms
    tiling a floor, floors stacked) are pulled apart in a copy by the difference of their
    units' marks, and a mark is one step either way on each axis. So, axis by axis, for every
    two vertex positions of the copy within 2 steps of each other: a difference of 2 says the
    units at the far one moved +1 and those at the near one -1 (a vote each); a difference of
    0, or the same position, says their units moved alike. Units that moved alike pool their
    votes, the sign of the sum is their estimated mark, and each unit is moved back by it.
    Returns the stripped copy and how many units it moved on both axes."""
    coords, unit = shapely.get_coordinates(copy, return_index=True)
    grid = np.rint(coords / step_deg).astype(np.int64)
    positions, at = np.unique(grid, axis=0, return_inverse=True)
    order = np.argsort(at, kind="stable")
    first = np.full(len(positions), -1, dtype=np.int64)  # a unit at each position
    first[at[order[::-1]]] = unit[order[::-1]]
    pairs = cKDTree(positions).query_pairs(2.0, p=np.inf, output_type="ndarray")
    n = len(copy)
    marks = np.zeros((n, 2), dtype=np.int64)
    for axis in (0, 1):
        difference = positions[pairs[:, 1], axis] - positions[pairs[:, 0], axis]
        votes = np.zeros(n)
        for sign in (1, -1):  # the far end of a +2 difference moved +1, the near end -1
            far = np.isin(at, pairs[difference == 2 * sign, 1])
            near = np.isin(at, pairs[difference == 2 * sign, 0])
            np.add.at(votes, unit[far], sign)
            np.add.at(votes, unit[near], -sign)
        alike = pairs[difference == 0]
        rows = np.concatenate([unit, first[alike[:, 0]]])
        cols = np.concatenate([first[at], first[alike[:, 1]]])
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        count, component = connected_components(graph, directed=False)
        pooled = np.bincount(component, weights=votes, minlength=count)
        marks[:, axis] = np.sign(pooled[component]).astype(np.int64)
    moved = np.repeat(-marks * step_deg, shapely.get_num_coordinates(copy), axis=0)
    stripped = shapely.set_coordinates(copy.copy(), shapely.get_coordinates(copy) + moved)
    return stripped, {"units": n, "moved": int((marks != 0).all(axis=1).sum())}


def unmarked_share(copy: np.ndarray, base: np.ndarray, step_deg: float) -> float:
    """The share of units a copy holds where the base has them, to the grid step: marks
    removed."""
    counts = shapely.get_num_coordinates(base)
    first = np.cumsum(counts) - counts
    moved = np.rint((shapely.get_coordinates(copy) - shapely.get_coordinates(base))[first] / step_deg)
    return float((moved == 0).all(axis=1).mean())


def strip_with_basemap(
    copy: np.ndarray, buildings: np.ndarray, footprints: dict[str, object], step_deg: float,
    *, shift: dict, noise_m: float, rng: np.random.Generator,
) -> np.ndarray:
    """Basemap-assisted residual stripping, by a recipient who holds true building footprints
    (a public basemap, each footprint off by ``noise_m`` metres, Gaussian per axis) and knows
    which released building each is (the outside evaluator matched 95 % by shape; here all
    are given). A building's edges in the copy are its footprint's edges moved by the
    release's smooth shift, quantized, and moved by the mark (or a room's edge further in,
    where every room along a wall was suppressed). The shift's form and parameters are in the
    release report (``shift``: a quadratic B-spline on nodes half a wavelength apart in a frame
    at ``origin``), so they fit its node values by least squares to the buildings whose
    edges all line up, predict each footprint's shifted edges from its corners (so the field's
    curvature across a building counts), read each building's mark on each axis from the
    edges that line up (the sign of what is left, where it is over a quarter step), and move
    the building back by it."""
    from releases.shift import LocalFrame  # the shift's frame is public code

    frame = LocalFrame(*shift["origin"])
    per_degree = np.array([frame.m_per_deg_lon, frame.m_per_deg_lat])
    per_step = step_deg * per_degree  # metres in a grid step, per axis
    bounds = shapely.bounds(copy)
    names, building = np.unique(buildings, return_inverse=True)
    known = np.flatnonzero([name in footprints for name in names])
    at = np.full(len(names), -1)
    at[known] = np.arange(len(known))
    seen_low = np.full((len(names), 2), np.inf)
    seen_high = np.full((len(names), 2), -np.inf)
    np.minimum.at(seen_low, building, bounds[:, :2])
    np.maximum.at(seen_high, building, bounds[:, 2:])
    seen_low = (seen_low[known] - (frame.lon0, frame.lat0)) * per_degree
    seen_high = (seen_high[known] - (frame.lon0, frame.lat0)) * per_degree

    corners, owner = shapely.get_coordinates(np.array([footprints[names[k]] for k in known], dtype=object),
                                             return_index=True)
    error = rng.normal(0, noise_m, (len(known), 2))  # the basemap's own error, per building
    corners = np.column_stack(frame.to_metres(*corners.T)) + error[owner]
    low, high = _boxes(corners, owner, len(known))
    centre = (low + high) / 2
    spacing = shift["wavelength_m"] / 2
    basis = _bspline_basis(np.vstack([centre, corners]) / spacing)
    at_centre, at_corner = basis[: len(known)], basis[len(known):]

    lined_up = np.ones(len(known), dtype=bool)
    curvature = np.zeros_like(centre)
    for _ in range(3):
        move = (seen_low + seen_high) / 2 - centre - curvature
        fitted, *_ = np.linalg.lstsq(at_centre[lined_up], move[lined_up], rcond=None)
        box_low, box_high = _boxes(corners + at_corner @ fitted, owner, len(known))
        curvature = (box_low + box_high) / 2 - (centre + at_centre @ fitted)
        left_low = (seen_low - box_low) / per_step  # mark + quantization, if this edge lines up
        left_high = (seen_high - box_high) / per_step
        agree = np.abs(left_low - left_high) <= 1.5
        lined_up = agree.all(axis=1)
    residual = np.where(agree, (left_low + left_high) / 2,
                        np.where(np.abs(left_low) < np.abs(left_high), left_low, left_high))
    mark = np.zeros((len(names), 2))
    mark[known] = np.where(np.abs(residual) > 0.25, np.sign(residual), 0.0)
    shifted = np.repeat(-mark[building] * step_deg, shapely.get_num_coordinates(copy), axis=0)
    return shapely.set_coordinates(copy.copy(), shapely.get_coordinates(copy) + shifted)


def _boxes(points: np.ndarray, owner: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    low = np.full((count, 2), np.inf)
    high = np.full((count, 2), -np.inf)
    np.minimum.at(low, owner, points)
    np.maximum.at(high, owner, points)
    return low, high


def _bspline_basis(uv: np.ndarray) -> np.ndarray:
    """(points, nodes): tensor quadratic B-spline weights of each point (in node units) on
    the nodes around the points."""
    def weights(t):
        t = np.abs(t)
        return np.where(t < 0.5, 0.75 - t**2, np.where(t < 1.5, 0.5 * (1.5 - t) ** 2, 0.0))

    low = np.floor(uv.min(axis=0) + 0.5).astype(int) - 1
    high = np.floor(uv.max(axis=0) + 0.5).astype(int) + 1
    columns = [weights(uv[:, 0] - i) * weights(uv[:, 1] - j)
               for i in range(low[0], high[0] + 1) for j in range(low[1], high[1] + 1)]
    return np.column_stack(columns)


def true_footprints(s: Scenario) -> dict[str, object]:
    """The attacker's basemap: each generated building's true footprint, under the release's
    pseudonym for it (what matching footprints to released buildings by shape gives them)."""
    from releases.desensitize import pseudonymize
    from releases.pipeline import subkey

    raw = pq.read_table(s.corpus, columns=["kind", "building_id", "geometry"])
    raw = raw.filter(pa.compute.equal(raw.column("kind"), "building"))
    shapes = shapely.from_wkb(raw.column("geometry").to_numpy(zero_copy_only=False))
    names = pseudonymize(raw.column("building_id"), subkey(s.release_key, "pseudonyms")).to_pylist()
    return dict(zip(names, shapes))


def building_rows(s: Scenario, buildings: int, rng: np.random.Generator) -> np.ndarray:
    """Every unit of ``buildings`` random buildings: a leak of a few whole buildings, shuffled."""
    names = np.unique(s.buildings)
    chosen = rng.choice(names, size=min(buildings, len(names)), replace=False)
    rows = np.flatnonzero(np.isin(s.buildings, chosen))
    return rng.permutation(rows)


# --- collusion ------------------------------------------------------------------------------


def average(copies: list[np.ndarray], step_deg: float | None = None) -> np.ndarray:
    """The colluders' copies averaged vertex by vertex; with ``step_deg``, snapped back to
    the release grid so that no off-grid residue shows (for 3 copies, a majority per axis)."""
    mean = np.mean([shapely.get_coordinates(c) for c in copies], axis=0)
    if step_deg is not None:
        mean = np.rint(mean / step_deg) * step_deg
    return shapely.set_coordinates(copies[0].copy(), mean)


def interleave(copies: list[np.ndarray], rng: np.random.Generator, groups: np.ndarray | None = None) -> np.ndarray:
    """Each unit (or each group of units, e.g. a building) taken from a random colluder."""
    keys = np.arange(len(copies[0])) if groups is None else np.unique(groups, return_inverse=True)[1]
    pick = rng.integers(len(copies), size=keys.max() + 1)[keys]
    return np.stack(copies)[pick, np.arange(len(pick))]


def minority(copies: list[np.ndarray], step_deg: float) -> np.ndarray:
    """Tardos's hardest attack for 3 colluders: on each axis of each unit where the copies
    differ, take the position fewer of them show (they see where they differ, not the
    biases)."""
    coords = np.stack([shapely.get_coordinates(c) for c in copies]) / step_deg
    low, high = coords.min(axis=0), coords.max(axis=0)
    on_high = (coords - low > 0.5).sum(axis=0)
    chosen = np.where(high - low > 0.5, np.where(on_high < len(copies) / 2, high, low), low)
    return shapely.set_coordinates(copies[0].copy(), chosen * step_deg)


# --- the harness ----------------------------------------------------------------------------


@dataclass
class Scenario:
    """A conditional release of a generated district and recipients' copies of it, made by
    the download path."""

    base: np.ndarray  # the release's geometries, in file order
    buildings: np.ndarray  # its building_id column (what recipients group by)
    groups: np.ndarray  # the fingerprint's mark group of each row
    precision_m: float
    step_deg: float
    code_key: bytes
    keys: dict[str, bytes]  # every recipient's key: the candidates
    copies: dict[str, np.ndarray]  # the packages of the recipients who leak
    detector: object
    corpus: Path
    release_key: bytes
    shift: dict  # the release report's shift parameters, which recipients read too
    stripped: dict[str, np.ndarray] = field(default_factory=dict)


def exact_rooms() -> dict:
    """The default room policy with every room at its exact (shifted) footprint and its
    building pseudonymized, the release a basemap can work on: rent is then an ordinary
    column, since location "exact" refuses a sensitive one. (The default, location "cell",
    puts rooms in grid cells: they tile the district, so they are one mark group and a
    basemap cannot put them back.)"""
    from releases.desensitize import UNIT_POLICY

    policy = UNIT_POLICY.to_dict()
    return {**policy, "location": "exact", "sensitive": [], "l": 1,
            "drop": [c for c in policy["drop"] if c != "building_id"],
            "pseudonymize": [*policy["pseudonymize"], "building_id"]}


def exact_rooms_spec(**spec) -> dict:
    """A release spec (plain data, ``spec`` fields over the default's) of the rooms alone
    under exact_rooms: the other kinds are dropped, as the default's l-diversity on rent
    withholds them."""
    from corpora.schema import UNIT_KINDS
    from releases.pipeline import ReleaseSpec

    base = ReleaseSpec(**spec).to_dict()
    return {**base, "desensitize": exact_rooms(),
            "declassify": {**base["declassify"], "drop_kinds": [k for k in UNIT_KINDS if k != "room"]}}


def build_release(workdir: Path, *, rooms: int, seed: int) -> None:
    """The district and its conditional release (exact_rooms) under ``workdir``."""
    from corpora.generator import generate_district
    from corpora.store import write_corpus
    from releases.pipeline import ReleaseSpec, run_release

    write_corpus(generate_district(seed=seed, rooms=rooms), workdir / "district.parquet")
    spec = ReleaseSpec.from_dict(exact_rooms_spec(data_class="conditional"))
    run_release(workdir / "district.parquet", spec, RELEASE_KEY, workdir / "release")


def build_scenario(
    workdir: Path, *, rooms: int, seed: int, recipients: int = 20, leakers: int = 6, built: bool = False
) -> Scenario:
    """The district, its conditional release (exact_rooms; ``built``: already under
    ``workdir``), ``recipients`` licence keys and the packages of the first ``leakers`` of
    them, made by the download path."""
    import json

    from access.packages import PackageSpec, batches, release_groups
    from access.fingerprint import Detector, code_key, grid_step_deg

    if not built:
        build_release(workdir, rooms=rooms, seed=seed)
    corpus = workdir / "district.parquet"
    release_key = RELEASE_KEY
    report = json.loads((workdir / "release" / "report.json").read_text())
    source = workdir / "release" / report["outputs"]["geoparquet"]["path"]
    precision = report["lightweight"]["precision_m"]
    table = pq.read_table(source)
    base = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    index, keys = release_groups(source, precision)
    # What recipients group by when they move whole buildings: the pseudonym, if released.
    buildings = (table.column("building_id").to_numpy(zero_copy_only=False).astype(str)
                 if "building_id" in table.column_names else keys[index].astype(str))
    fingerprint_code = code_key(release_key)
    rng = np.random.default_rng(seed)
    recipient_keys = {f"licence-{i:02d}": rng.bytes(32) for i in range(recipients)}
    copies = {}
    for name in list(recipient_keys)[:leakers]:
        spec = PackageSpec(source=source, fingerprint_key=recipient_keys[name], precision_m=precision,
                           code_key=fingerprint_code)
        package = pa.concat_tables(list(batches(spec)))
        copies[name] = shapely.from_wkb(package.column("geometry").to_numpy(zero_copy_only=False))
    return Scenario(
        base=base,
        buildings=buildings,
        groups=keys[index],
        precision_m=precision,
        step_deg=grid_step_deg(precision),
        code_key=fingerprint_code,
        keys=recipient_keys,
        copies=copies,
        detector=Detector(base, keys[index], code_key=fingerprint_code, precision_m=precision),
        corpus=corpus,
        release_key=release_key,
        shift=report["shift"]["mode"],
    )


@dataclass(frozen=True)
class Attack:
    """``make(s, who, rows, rng)``: the leaked units ``rows`` of the release as the colluders
    ``who`` pass them on. Attacks that act unit by unit, or building by building, are applied
    to the leaked rows only (the same result, for less work); ``crs``: the CRS the leak is in,
    which the auditor declares; ``shuffle``: the leak is reordered."""

    colluders: int
    make: Callable[[Scenario, list[str], np.ndarray, np.random.Generator], np.ndarray]
    crs: str | None = None
    shuffle: bool = True
    rows: Callable[[Scenario, np.random.Generator], np.ndarray] | None = None  # else a random share


def _own(s: Scenario, who: list[str], rows: np.ndarray) -> list[np.ndarray]:
    return [s.copies[w][rows] for w in who]


def _stripped(s: Scenario, who: list[str], rows: np.ndarray, rng) -> np.ndarray:
    """Stripping needs the whole copy (it reads neighbours); it is done once per leaker."""
    if who[0] not in s.stripped:
        s.stripped[who[0]] = strip_by_vertex_consistency(s.copies[who[0]], s.step_deg)[0]
    return s.stripped[who[0]][rows]


ATTACKS: dict[str, Attack] = {
    "subset": Attack(1, lambda s, who, rows, rng: s.copies[who[0]][rows], shuffle=False),
    "reorder": Attack(1, lambda s, who, rows, rng: s.copies[who[0]][rows]),
    "round 1 m (GK metres)": Attack(1, lambda s, who, rows, rng: round_metric(s.copies[who[0]][rows], 1.0)),
    "round 1 m (release grid)": Attack(
        1, lambda s, who, rows, rng: round_degrees(s.copies[who[0]][rows], 2 * s.step_deg)
    ),
    "reproject (3857)": Attack(
        1, lambda s, who, rows, rng: project(s.copies[who[0]][rows], STORAGE_CRS, WEB_CRS), crs=WEB_CRS
    ),
    "reproject (3857 and back)": Attack(
        1, lambda s, who, rows, rng: project(project(s.copies[who[0]][rows], STORAGE_CRS, WEB_CRS), WEB_CRS,
                                             STORAGE_CRS)
    ),
    "strip (vertex consistency)": Attack(1, _stripped),
    "jitter per unit": Attack(1, lambda s, who, rows, rng: jitter(s.copies[who[0]][rows], rng, s.step_deg)),
    "jitter per building": Attack(
        1, lambda s, who, rows, rng: jitter(s.copies[who[0]][rows], rng, s.step_deg, s.buildings[rows])
    ),
    "2: average": Attack(2, lambda s, who, rows, rng: average(_own(s, who, rows), s.step_deg)),
    "2: interleave per unit": Attack(2, lambda s, who, rows, rng: interleave(_own(s, who, rows), rng)),
    "2: interleave per building": Attack(
        2, lambda s, who, rows, rng: interleave(_own(s, who, rows), rng, s.buildings[rows])
    ),
    "3: average": Attack(3, lambda s, who, rows, rng: average(_own(s, who, rows))),
    "3: average, snapped to grid": Attack(3, lambda s, who, rows, rng: average(_own(s, who, rows), s.step_deg)),
    "3: interleave per unit": Attack(3, lambda s, who, rows, rng: interleave(_own(s, who, rows), rng)),
    "3: interleave per building": Attack(
        3, lambda s, who, rows, rng: interleave(_own(s, who, rows), rng, s.buildings[rows])
    ),
    "3: minority per axis": Attack(3, lambda s, who, rows, rng: minority(_own(s, who, rows), s.step_deg)),
}


@dataclass
class Trial:
    attack: str
    fraction: float
    guilty: tuple[str, ...]
    accused: list[str]
    recipient: str | None
    observation: object

    @property
    def traced(self) -> bool:
        """Single recipient: named. Collusion: at least one colluder accused. Never anyone
        innocent."""
        if self.wrong:
            return False
        if len(self.guilty) == 1:
            return self.recipient == self.guilty[0]
        return bool(self.accused)

    @property
    def wrong(self) -> list[str]:
        return [a for a in self.accused if a not in self.guilty]


def run_trials(
    s: Scenario, attack: str | Attack, fraction: float, trials: int, rng: np.random.Generator
) -> list[Trial]:
    """``trials`` leaks of ``fraction`` of the units after ``attack`` (a name in ATTACKS, or
    an Attack), each by the next leakers in turn, each traced against every recipient's key."""
    how = ATTACKS[attack] if isinstance(attack, str) else attack
    leakers = list(s.copies)
    out = []
    for t in range(trials):
        who = [leakers[(t + k) % len(leakers)] for k in range(how.colluders)]
        rows = how.rows(s, rng) if how.rows else leaked_rows(len(s.base), rng, fraction, shuffle=how.shuffle)
        leaked = how.make(s, who, rows, rng)
        observation = s.detector.observe(leaked, leaked_crs=how.crs)
        detection = s.detector.decide(observation, s.keys)
        name = attack if isinstance(attack, str) else "custom"
        out.append(Trial(name, fraction, tuple(who), detection.accused, detection.recipient, observation))
    return out


def innocent_symbols(s: Scenario, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, groups of the base): the symbols of ``count`` fresh recipient keys that made
    no copy at all, through the detector's own key derivation."""
    return np.stack([s.detector.symbols(rng.bytes(32)) for _ in range(count)])


def innocents_over(trials: list[Trial], symbols: np.ndarray, levels: tuple[float, ...]) -> tuple[int, dict]:
    """(innocent scores counted, {level: how many reached the threshold for that level}):
    every innocent key scored against every trial's leak. The bound says at most a share
    ``level`` of them should, at every level."""
    over = dict.fromkeys(levels, 0)
    for trial in trials:
        obs = trial.observation
        scores = obs.scores(symbols[:, obs.rows])
        for level in levels:
            threshold = obs.threshold(level)
            if threshold is not None:
                over[level] += int((scores >= threshold).sum())
    return len(trials) * len(symbols), over
