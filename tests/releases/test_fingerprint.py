"""Recipient fingerprints: every package carries a keyed mark within the release precision
that names its recipient from a small, stripped, reprojected or rounded leak, and that never
names anyone else."""
from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from releases.fingerprint import DEFAULT_ALPHA, detect, embed, grid_step_deg

pytestmark = pytest.mark.release

Q = 0.5  # release precision, metres
STEP = grid_step_deg(Q)
GEOD = pyproj.Geod(ellps="GRS80")
TO_3857 = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:3857", always_xy=True)
FROM_3857 = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4490", always_xy=True)
DEG_PER_M_LON, DEG_PER_M_LAT = 1 / 95_290, 1 / 110_860  # near Shanghai, roughly


def quantize(geoms, step=STEP):
    """Round to the release grid, as the lightweight step (or a leaker) does."""
    return shapely.transform(geoms, lambda xy: np.rint(xy / step) * step)


def project(geoms, transformer):
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def rooms(n, precision=Q):
    """n rooms of 8 x 6 quanta (4 m x 3 m at 0.5 m) on a 10 x 8 quanta pitch around
    (121.5, 31.23), on the release grid."""
    i = np.arange(n)
    cols = math.ceil(math.sqrt(n))
    dx, dy = precision * DEG_PER_M_LON, precision * DEG_PER_M_LAT
    x = 121.5 + (i % cols) * 10 * dx
    y = 31.23 + (i // cols) * 8 * dy
    geoms = quantize(shapely.box(x, y, x + 8 * dx, y + 6 * dy), grid_step_deg(precision))
    return geoms, np.array([f"room-{k:06d}" for k in i])


def mixed_units(n, precision=Q):
    """Rooms, rooms round a courtyard, L-shaped rooms and pipes (line segments)."""
    boxes, keys = rooms(n, precision)
    x0, y0, x1, y1 = shapely.bounds(boxes).T
    dx, dy = 2 * precision * DEG_PER_M_LON, 2 * precision * DEG_PER_M_LAT
    courtyard = shapely.box(x0 + dx, y0 + dy, x1 - dx, y1 - dy)
    corner = shapely.box((x0 + x1) / 2, (y0 + y1) / 2, x1, y1)
    pipes = shapely.linestrings(np.stack([[x0, y0], [x1, y1]]).transpose(2, 0, 1))
    shapes = np.stack([boxes, shapely.difference(boxes, courtyard), shapely.difference(boxes, corner), pipes])
    geoms = quantize(shapes[np.arange(n) % 4, np.arange(n)], grid_step_deg(precision))
    assert shapely.is_valid(geoms).all()
    return geoms, keys


def vertex_moves_m(before, after):
    a, b = shapely.get_coordinates(before), shapely.get_coordinates(after)
    return GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])[2]


def leak(package, rng, *, fraction=1.0, reproject=None, rounded=False):
    """What a leaker passes on: a random share of the units, shuffled, geometry only."""
    count = max(1, round(fraction * len(package)))
    geoms = package[rng.choice(len(package), size=count, replace=False)]
    if reproject in ("3857", "3857 and back"):
        geoms = project(geoms, TO_3857)
    if reproject == "3857 and back":
        geoms = project(geoms, FROM_3857)
    if rounded:
        geoms = quantize(geoms, Q if reproject == "3857" else STEP)  # 3857: to q projected metres
    return geoms


@pytest.fixture(scope="module")
def district():
    return rooms(5000)


@pytest.fixture(scope="module")
def recipients(district):
    """40 recipients: id -> (key, package)."""
    base, keys = district
    rng = np.random.default_rng(2024)
    out = {}
    for r in range(40):
        key = rng.bytes(32)
        out[f"recipient-{r:02d}"] = (key, embed(base, keys, key, precision_m=Q))
    return out


def keys_of(recipients, ids):
    return {r: recipients[r][0] for r in ids}


def test_embed_moves_each_unit_rigidly_within_the_precision_and_keeps_it_valid():
    base, keys = mixed_units(2000)
    original = base.copy()
    package = embed(base, keys, b"recipient-a", precision_m=Q)

    assert shapely.is_valid(package).all()
    assert (shapely.get_type_id(package) == shapely.get_type_id(base)).all()
    moves = vertex_moves_m(base, package)
    assert moves.max() <= Q * math.sqrt(2) + 1e-9, f"a vertex moved {moves.max():.4f} m > q·√2"
    assert moves.min() > 0, "every unit carries a mark"
    delta = shapely.get_coordinates(package) - shapely.get_coordinates(base)
    counts = shapely.get_num_coordinates(base)
    per_unit = np.repeat(delta[np.cumsum(counts) - counts], counts, axis=0)
    np.testing.assert_allclose(delta, per_unit, rtol=0, atol=1e-12, err_msg="translation is rigid")
    on_grid = shapely.equals_exact(quantize(package), package, tolerance=0)
    assert on_grid.all(), "the package lies exactly on the release grid, so the mark is invisible"
    assert shapely.equals_exact(base, original, tolerance=0).all(), "the base is not modified"


@settings(max_examples=25, deadline=None)
@given(precision=st.floats(0.01, 10.0), key=st.binary(min_size=1, max_size=64))
def test_embed_stays_within_any_precision(precision, key):
    base, keys = mixed_units(64, precision)
    package = embed(base, keys, key, precision_m=precision)
    assert shapely.is_valid(package).all()
    assert vertex_moves_m(base, package).max() <= precision * math.sqrt(2) + 1e-9


def test_embed_is_deterministic_per_recipient_and_unit(district):
    base, keys = district
    package = embed(base, keys, b"recipient-a", precision_m=Q)
    again = embed(base, keys, b"recipient-a", precision_m=Q)
    assert shapely.equals_exact(package, again, tolerance=0).all()

    subset = np.random.default_rng(1).permutation(len(base))[:500]
    alone = embed(base[subset], keys[subset], b"recipient-a", precision_m=Q)
    assert shapely.equals_exact(alone, package[subset], tolerance=0).all(), "a unit's mark ignores the batch"

    other = embed(base, keys, b"recipient-b", precision_m=Q)
    differs = ~shapely.equals_exact(package, other, tolerance=0)
    assert 0.8 < differs.mean() < 0.95  # 7/8 by chance


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
    ],
    ids=["subset", "shuffled-no-ids", "3857-and-back", "in-3857", "rounded", "combined", "combined-in-3857"],
)
def test_detection_names_the_leaking_recipient(district, recipients, attack):
    base, keys = district
    candidates = keys_of(recipients, list(recipients)[:20])
    guilty = "recipient-07"
    leaked = leak(recipients[guilty][1], np.random.default_rng(7), **attack)

    crs = "EPSG:3857" if attack.get("reproject") == "3857" else None
    detection = detect(leaked, base, keys, candidates, precision_m=Q, leaked_crs=crs)

    assert detection.recipient == guilty, detection.to_dict()
    assert detection.matched_units >= 0.95 * len(leaked)
    assert detection.false_accusation_bound < DEFAULT_ALPHA
    assert max(detection.scores, key=detection.scores.get) == guilty


def test_never_accuses_the_wrong_recipient(district, recipients):
    """Leaks from a candidate, from a recipient who is not a candidate, and of the
    unfingerprinted base, of every size from 5 units to 10%, under every attack."""
    base, keys = district
    rng = np.random.default_rng(99)
    ids = list(recipients)
    trials, wrong, named, guilty_trials = 200, [], 0, 0
    for trial in range(trials):
        candidate_ids = list(rng.choice(ids, size=20, replace=False))
        source = trial % 3  # 0: a candidate, 1: an outsider, 2: the base
        if source == 0:
            leaker = str(rng.choice(candidate_ids))
        elif source == 1:
            leaker = str(rng.choice(sorted(set(ids) - set(candidate_ids))))
        package = base if source == 2 else recipients[leaker][1]
        leaked = leak(
            package,
            rng,
            fraction=rng.choice([0.001, 0.01, 0.1]),
            reproject=rng.choice([None, "3857 and back"]),
            rounded=rng.random() < 0.5,
        )

        detection = detect(leaked, base, keys, keys_of(recipients, candidate_ids), precision_m=Q)

        if detection.recipient is not None and not (source == 0 and detection.recipient == leaker):
            wrong.append((trial, source, detection.to_dict()))
        if source == 0 and len(leaked) >= 50:
            guilty_trials += 1
            named += detection.recipient == leaker
    assert not wrong, (
        f"{len(wrong)} false accusations in {trials} leaks × 20 candidates; the bound is "
        f"P(accusing an innocent) <= alpha = {DEFAULT_ALPHA:g} per leak: {wrong[:3]}"
    )
    assert named == guilty_trials, f"named {named} of {guilty_trials} guilty leaks of >= 50 units"


def test_false_accusation_rate_stays_below_a_visible_alpha(district, recipients):
    """At alpha = 0.1 false accusations become frequent enough to count: leaks from a
    recipient who is not a candidate must be pinned on a candidate at most alpha of the time."""
    base, keys = district
    rng = np.random.default_rng(5)
    outsider = recipients["recipient-39"][1]
    trials, alpha, accused = 200, 0.1, 0
    for _ in range(trials):
        candidates = {f"innocent-{i}": rng.bytes(32) for i in range(20)}
        leaked = leak(outsider, rng, fraction=rng.uniform(0.004, 0.04))
        accused += detect(leaked, base, keys, candidates, precision_m=Q, alpha=alpha).recipient is not None
    # Binomial(200, 0.1) exceeds 35 with probability < 1e-4.
    assert accused <= 35, f"{accused} of {trials} leaks pinned on an innocent at alpha = {alpha}"


def test_a_tiny_leak_yields_no_accusation_rather_than_a_wrong_one(district, recipients):
    base, keys = district
    candidates = keys_of(recipients, list(recipients)[:20])
    leaked = leak(recipients["recipient-03"][1], np.random.default_rng(3), fraction=5 / len(base))

    detection = detect(leaked, base, keys, candidates, precision_m=Q)

    assert detection.recipient is None
    assert detection.scores["recipient-03"] == 5
    assert detection.p_value == pytest.approx(8.0**-5)
    assert detection.false_accusation_bound > DEFAULT_ALPHA


def test_the_unfingerprinted_base_agrees_with_no_one(district, recipients):
    base, keys = district
    detection = detect(base[:500], base, keys, keys_of(recipients, list(recipients)[:20]), precision_m=Q)
    assert detection.recipient is None
    assert detection.matched_units == 500
    assert set(detection.scores.values()) == {0}


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda g, k: embed(g, k, b"key", precision_m=0), "precision_m"),
        (lambda g, k: embed(g, k, b"key", precision_m=-0.5), "precision_m"),
        (lambda g, k: embed(g, k, b"key", precision_m=float("nan")), "precision_m"),
        (lambda g, k: embed(g, k[:-1], b"key", precision_m=Q), "unit_keys"),
        (lambda g, k: embed(g, k, b"", precision_m=Q), "recipient_key"),
        (lambda g, k: embed(g, k, b"key", precision_m=Q * 0.7), "geoms"),
        (lambda g, k: detect(g, g, k, {}, precision_m=Q), "candidates"),
        (lambda g, k: detect(g, g, k, {"a": "not-bytes"}, precision_m=Q), "candidates"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, precision_m=0), "precision_m"),
        (lambda g, k: detect(g, g, k[:-1], {"a": b"key"}, precision_m=Q), "base_unit_keys"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, precision_m=Q, alpha=0), "alpha"),
        (lambda g, k: detect(g, g, k, {"a": b"key"}, precision_m=Q, leaked_crs="EPSG:nope"), "leaked_crs"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, argument):
    geoms, keys = rooms(20)
    with pytest.raises(ValueError, match=argument):
        call(geoms, keys)
