"""Recipient fingerprints: every package carries a keyed mark within the release precision,
moved building by building so that no two units of one copy disagree where the base has them
agree; a small, stripped, reprojected or rounded leak names its recipient, and the
false-accusation bound holds. The attacks a recipient would try are in
tests/releases/attacks/test_fingerprint_attacks.py."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from access.fingerprint import (
    DEFAULT_ALPHA,
    SYMBOLS,
    Detector,
    MarkGroups,
    Observation,
    _score_table,
    code_key,
    detect,
    embed,
    grid_step_deg,
    mark_groups,
)

pytestmark = pytest.mark.release

Q = 0.5  # release precision, metres
STEP = grid_step_deg(Q)
CODE = code_key(b"a release key of thirty-two bytes")
GEOD = pyproj.Geod(ellps="GRS80")
TO_3857 = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:3857", always_xy=True)
FROM_3857 = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4490", always_xy=True)
ORIGIN = np.array([121.5, 31.23])


def project(geoms, transformer):
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def district(buildings=150, cols=3, rows=2, floors=3, precision=Q):
    """``buildings`` buildings 60 steps apart, each ``cols`` x ``rows`` rooms of 9 x 7 steps
    tiling a floor (neighbours share vertices bit for bit) stacked ``floors`` high (twins
    share the footprint), on the release grid. Returns (geoms, unit ids, building ids)."""
    step = grid_step_deg(precision)
    b, f, r, c = np.meshgrid(np.arange(buildings), np.arange(floors), np.arange(rows), np.arange(cols), indexing="ij")
    b, r, c = b.ravel(), r.ravel(), c.ravel()
    x0 = np.rint(ORIGIN[0] / step) + (b % 15) * 60 + c * 9
    y0 = np.rint(ORIGIN[1] / step) + (b // 15) * 60 + r * 7
    geoms = shapely.box(x0 * step, y0 * step, (x0 + 9) * step, (y0 + 7) * step)
    units = np.array([f"room-{i:06d}" for i in range(len(geoms))])
    return geoms, units, np.array([f"bldg-{k:04d}" for k in b])


@pytest.fixture(scope="module")
def base():
    geoms, units, buildings = district()
    return geoms, mark_groups(geoms, units, buildings, precision_m=Q), buildings


@pytest.fixture(scope="module")
def recipients(base):
    """40 recipients: id -> (key, package)."""
    geoms, groups, _ = base
    rng = np.random.default_rng(2024)
    out = {}
    for r in range(40):
        key = rng.bytes(32)
        out[f"recipient-{r:02d}"] = (key, embed(geoms, groups, key, code_key=CODE, precision_m=Q))
    return out


def keys_of(recipients, ids):
    return {r: recipients[r][0] for r in ids}


def leak(package, rng, *, fraction=1.0, reproject=None, rounded=False, moved_m=0.0):
    """What a leaker passes on: a random share of the units, shuffled, geometry only."""
    count = max(1, round(fraction * len(package)))
    geoms = package[rng.choice(len(package), size=count, replace=False)]
    if moved_m:
        geoms = shapely.transform(geoms, lambda xy: xy + moved_m / 100_000)
    if reproject in ("3857", "3857 and back"):
        geoms = project(geoms, TO_3857)
    if reproject == "3857 and back":
        geoms = project(geoms, FROM_3857)
    if rounded:  # to 1 m: in 3857 metres, or on the 1 m grid of degrees the release grid nests in
        size = 1.0 if reproject == "3857" else grid_step_deg(1.0)
        geoms = shapely.transform(geoms, lambda xy: np.rint(xy / size) * size)
    return geoms


def test_groups_are_buildings_connected_units_and_lone_units():
    geoms, units, buildings = district(buildings=4, floors=2)
    by_building = mark_groups(geoms, units, buildings, precision_m=Q)
    assert len(set(by_building)) == 4
    # Without the building pseudonym, shared vertices (tiling, stacking) still join a building.
    by_vertex = mark_groups(geoms, units, None, precision_m=Q)
    assert len(set(by_vertex)) == 4
    assert len(set(zip(by_building, by_vertex))) == 4

    x, y = np.rint(ORIGIN / STEP) + 5000
    chain = shapely.linestrings([[(x + 40 * i, y), (x + 40 * (i + 1), y)] for i in range(3)]) 
    lone = shapely.linestrings([[(x, y + 100), (x + 40, y + 100)]])
    near = shapely.linestrings([[(x + 42, y + 102), (x + 80, y + 130)]])  # 2 steps from lone's end
    apart = shapely.linestrings([[(x, y + 300), (x + 40, y + 300)], [(x + 44, y + 300), (x + 80, y + 300)]])
    lines = shapely.transform(np.concatenate([chain, lone, near, apart]), lambda xy: xy * STEP)
    keys = mark_groups(lines, np.array([f"seg-{i}" for i in range(len(lines))]), np.array([None] * len(lines)),
                       precision_m=Q)
    assert len(set(keys[:3])) == 1, "segments meeting at their ends move together"
    assert keys[3] == keys[4], "units close enough to show two marks' difference move together"
    assert keys[5] != keys[6] and len(set(keys)) == 4, "units 4 steps apart are groups of their own"


def test_groups_do_not_depend_on_order_or_batches():
    geoms, units, buildings = district(buildings=30, floors=2)
    whole = mark_groups(geoms, units, buildings, precision_m=Q)
    order = np.random.default_rng(3).permutation(len(geoms))
    groups = MarkGroups(precision_m=Q)
    for part in np.array_split(order, 7):
        groups.add(geoms[part], units[part], buildings[part])
    index, keys = groups.finish()
    assert (keys[index] == whole[order]).all()


def test_embed_moves_each_group_rigidly_by_one_step_and_keeps_it_valid(base):
    geoms, groups, _ = base
    original = geoms.copy()
    package = embed(geoms, groups, b"recipient-a", code_key=CODE, precision_m=Q)

    assert shapely.is_valid(package).all()
    assert (shapely.get_type_id(package) == shapely.get_type_id(geoms)).all()
    move = np.rint((shapely.get_coordinates(package) - shapely.get_coordinates(geoms)) / STEP)
    assert (np.abs(move) == 1).all(), "every vertex moves one step per axis"
    counts = shapely.get_num_coordinates(geoms)
    per_unit = move[np.cumsum(counts) - counts]
    for g in np.unique(groups):  # a group moves as one
        assert len(np.unique(per_unit[groups == g], axis=0)) == 1
    a, b = shapely.get_coordinates(geoms), shapely.get_coordinates(package)
    assert GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])[2].max() <= Q * math.sqrt(2) + 1e-9
    on_grid = shapely.equals_exact(shapely.transform(package, lambda xy: np.rint(xy / STEP) * STEP), package, 0)
    assert on_grid.all(), "the package lies exactly on the release grid, so the mark is invisible"
    assert shapely.equals_exact(geoms, original, tolerance=0).all(), "the base is not modified"


@settings(max_examples=25, deadline=None)
@given(precision=st.floats(0.01, 10.0), key=st.binary(min_size=1, max_size=64))
def test_embed_stays_within_any_precision(precision, key):
    geoms, units, buildings = district(buildings=3, floors=2, precision=precision)
    package = embed(geoms, mark_groups(geoms, units, buildings, precision_m=precision), key,
                    code_key=CODE, precision_m=precision)
    assert shapely.is_valid(package).all()
    a, b = shapely.get_coordinates(geoms), shapely.get_coordinates(package)
    assert GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])[2].max() <= precision * math.sqrt(2) + 1e-9


def test_embed_is_deterministic_per_recipient_and_group(base):
    geoms, groups, _ = base
    package = embed(geoms, groups, b"recipient-a", code_key=CODE, precision_m=Q)
    again = embed(geoms, groups, b"recipient-a", code_key=CODE, precision_m=Q)
    assert shapely.equals_exact(package, again, tolerance=0).all()

    subset = np.random.default_rng(1).permutation(len(geoms))[:500]
    alone = embed(geoms[subset], groups[subset], b"recipient-a", code_key=CODE, precision_m=Q)
    assert shapely.equals_exact(alone, package[subset], tolerance=0).all(), "a unit's mark ignores the batch"

    other = embed(geoms, groups, b"recipient-b", code_key=CODE, precision_m=Q)
    differs = ~shapely.equals_exact(package, other, tolerance=0)
    assert 0.35 < differs.mean() < 0.75  # two symbols agree with chance sum P_k^2 = 0.44 on average
    another_release = embed(geoms, groups, b"recipient-a", code_key=code_key(b"another release key"), precision_m=Q)
    assert not shapely.equals_exact(package, another_release, tolerance=0).all()


@pytest.mark.parametrize(
    "attack",
    [
        {"fraction": 0.1},
        {},  # the whole package, shuffled, ids and attributes dropped
        {"reproject": "3857 and back"},
        {"reproject": "3857"},
        {"rounded": True},
        {"fraction": 0.1, "reproject": "3857 and back", "rounded": True},
        {"fraction": 0.1, "reproject": "3857", "rounded": True},
        {"fraction": 0.1, "moved_m": 30.0},
    ],
    ids=["subset", "shuffled-no-ids", "3857-and-back", "in-3857", "rounded", "combined", "combined-in-3857",
         "moved-30-m"],
)
def test_detection_names_the_leaking_recipient(base, recipients, attack):
    geoms, groups, _ = base
    candidates = keys_of(recipients, list(recipients)[:20])
    guilty = "recipient-07"
    leaked = leak(recipients[guilty][1], np.random.default_rng(7), **attack)

    crs = "EPSG:3857" if attack.get("reproject") == "3857" else None
    detection = detect(leaked, geoms, groups, candidates, code_key=CODE, precision_m=Q, leaked_crs=crs)

    assert detection.recipient == guilty and detection.accused == [guilty], detection.to_dict()
    assert detection.matched_units == len(leaked), "stacked twins are one group: no unit is ambiguous"
    assert detection.false_accusation_bound < DEFAULT_ALPHA
    assert max(detection.scores, key=detection.scores.get) == guilty


def test_the_chernoff_bound_holds_against_the_exact_distribution():
    """For codes short enough to enumerate every innocent codeword, the exact chance that an
    innocent reaches the threshold is at most the level asked for, and the bound on any score
    is at least the exact tail, for observations exact, averaged and jittered."""
    rng = np.random.default_rng(11)
    for trial in range(12):
        groups = 6
        bias = rng.choice([0.2113, 0.7887], size=(groups, 2))
        observed = [SYMBOLS[rng.integers(4, size=groups)], rng.uniform(-1, 1, (groups, 2)),
                    np.clip(SYMBOLS[rng.integers(4, size=groups)] + rng.integers(-1, 2, (groups, 2)), -1, 1)][trial % 3]
        table, probs = _score_table(observed, bias)
        observation = Observation(np.arange(groups).astype(str).astype(object), np.arange(groups), table, probs, groups)
        codewords = np.array(list(itertools.product(range(4), repeat=groups)))
        scores = observation.scores(codewords)
        chance = np.prod(probs[np.arange(groups), codewords], axis=1)
        assert chance.sum() == pytest.approx(1.0)
        assert abs((chance * scores).sum()) < 1e-9, "an innocent's score has mean zero"
        for level in (0.2, 0.05, 0.01, 1e-3):
            threshold = observation.threshold(level)
            if threshold is not None:
                assert chance[scores >= threshold].sum() <= level
        for score in np.quantile(scores, [0.5, 0.9, 0.99, 1.0]):
            assert chance[scores >= score - 1e-12].sum() <= math.exp(observation.log_tail(score)) * (1 + 1e-9)


def test_never_accuses_an_outsider_or_the_base(base, recipients):
    """Leaks of every size, under every attack, from a recipient who is not a candidate and
    from the unfingerprinted base: nobody is accused. The candidates' keys are those of 20
    recipients; 200 leaks x 20 innocent candidates."""
    geoms, groups, _ = base
    detector = Detector(geoms, groups, code_key=CODE, precision_m=Q)
    rng = np.random.default_rng(99)
    ids = list(recipients)
    wrong = []
    for trial in range(200):
        candidate_ids = list(rng.choice(ids[:30], size=20, replace=False))
        package = geoms if trial % 2 else recipients[ids[30 + trial % 10]][1]
        leaked = leak(package, rng, fraction=rng.choice([0.002, 0.01, 0.1, 1.0]),
                      reproject=rng.choice([None, "3857 and back"]), rounded=rng.random() < 0.5)
        detection = detector.detect(leaked, keys_of(recipients, candidate_ids))
        if detection.accused:
            wrong.append((trial, detection.to_dict()))
    assert not wrong, wrong[:2]


def test_false_accusations_stay_within_a_visible_alpha(base, recipients):
    """At alpha = 0.2 accusations of innocents become frequent enough to count: leaks from
    an outsider must be pinned on one of 20 innocent candidates at most alpha of the time."""
    geoms, groups, _ = base
    detector = Detector(geoms, groups, code_key=CODE, precision_m=Q)
    rng = np.random.default_rng(5)
    outsider = recipients["recipient-39"][1]
    trials, alpha, accused = 200, 0.2, 0
    for _ in range(trials):
        candidates = {f"innocent-{i}": rng.bytes(32) for i in range(20)}
        leaked = leak(outsider, rng, fraction=rng.uniform(0.01, 0.1))
        accused += bool(detector.detect(leaked, candidates, alpha=alpha).accused)
    # Binomial(200, 0.2) exceeds 60 with probability < 3e-4.
    assert accused <= 60, f"{accused} of {trials} leaks pinned on an innocent at alpha = {alpha}"


def test_a_tiny_leak_yields_no_accusation_rather_than_a_wrong_one(base, recipients):
    geoms, groups, _ = base
    candidates = keys_of(recipients, list(recipients)[:20])
    leaked = leak(recipients["recipient-03"][1], np.random.default_rng(3), fraction=3 / len(geoms))

    detection = detect(leaked, geoms, groups, candidates, code_key=CODE, precision_m=Q)

    assert detection.recipient is None and detection.accused == []
    assert detection.matched_groups <= 3 and detection.threshold is None
    assert detection.false_accusation_bound > DEFAULT_ALPHA


def test_the_unfingerprinted_base_agrees_with_no_one(base, recipients):
    geoms, groups, _ = base
    detection = detect(geoms[:900], geoms, groups, keys_of(recipients, list(recipients)[:20]), code_key=CODE,
                       precision_m=Q)
    assert detection.recipient is None and detection.accused == []
    assert detection.matched_units == 900


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda g, k: embed(g, k, b"key", code_key=CODE, precision_m=0), "precision_m"),
        (lambda g, k: embed(g, k, b"key", code_key=CODE, precision_m=-0.5), "precision_m"),
        (lambda g, k: embed(g, k, b"key", code_key=CODE, precision_m=float("nan")), "precision_m"),
        (lambda g, k: embed(g, k[:-1], b"key", code_key=CODE, precision_m=Q), "group_keys"),
        (lambda g, k: embed(g, np.arange(len(k)), b"key", code_key=CODE, precision_m=Q), "group_keys"),
        (lambda g, k: embed(g, k, b"", code_key=CODE, precision_m=Q), "recipient_key"),
        (lambda g, k: embed(g, k, b"key", code_key=b"", precision_m=Q), "code_key"),
        (lambda g, k: embed(g, k, b"key", code_key=CODE, precision_m=Q * 0.7), "geoms"),
        (lambda g, k: detect(g, g, k, {}, code_key=CODE, precision_m=Q), "candidates"),
        (lambda g, k: detect(g, g, k, {"a": "not-bytes"}, code_key=CODE, precision_m=Q), "candidates"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, code_key=CODE, precision_m=0), "precision_m"),
        (lambda g, k: detect(g, g, k[:-1], {"a": b"key"}, code_key=CODE, precision_m=Q), "base_group_keys"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, code_key=CODE, precision_m=Q, alpha=0), "alpha"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, code_key=CODE, precision_m=Q, leaked_crs="EPSG:nope"),
         "leaked_crs"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, code_key=None, precision_m=Q), "code_key"),
        (lambda g, k: mark_groups(g, k[:-1], precision_m=Q), "unit_ids"),
        (lambda g, k: mark_groups(g, k, np.arange(len(k)), precision_m=Q), "building_ids"),
        (lambda g, k: mark_groups(g, k, precision_m=0), "precision_m"),
        (lambda g, k: code_key(b""), "release_key"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, argument):
    geoms, units, _ = district(buildings=2, floors=1)
    with pytest.raises(ValueError, match=argument):
        call(geoms, units)
