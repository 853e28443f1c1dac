"""No released column locates a unit better than the released geometry does.

The attacker has the release files and the shift's published model (the report), and for
the number columns a few true landmarks. Each column is attacked the way its kind allows:

- a column of grid codes (grid_code; the cell in a grid-level aggregate's id) by the attack
  of the outside evaluation: a unit's true footprint lies in its cell and its released one is
  the true one moved by the field, so each cell bounds the offset at its unit, and the shift's
  published model (a B-spline field, linear in its node vectors) is fitted to those bounds;
- a number column by a landmark fit: the offset (true minus released) is fitted over k = 5
  landmarks with a thin-plate spline, over the released position alone and over the
  released position plus the column, and applied to every other unit.

Each attack is first run on a column that does derive from the true geometry (the corpus's
own grid code, the true easting), to show that it finds such a column, then on every code
and number column of the release, where it must do no better than the geometry alone.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import shapely
from scipy.interpolate import RBFInterpolator

pytestmark = pytest.mark.release

KEY = bytes(range(32))
ROOMS = 4000
LANDMARKS = 5
DRAWS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from corpora.generator import generate_district
    from corpora.store import write_corpus

    path = tmp_path_factory.mktemp("columns") / "district.parquet"
    write_corpus(generate_district(seed=23, rooms=ROOMS), path)
    return path


def _release(corpus, tmp_path_factory, **lightweight):
    from releases.desensitize import UNIT_POLICY, DesensitizePolicy
    from releases.lightweight import LightweightPolicy
    from releases.pipeline import ReleaseSpec, run_release

    # Rooms at their exact (shifted) footprints, the policy under which a column could add most
    # to the geometry: rent is then an ordinary column (location "exact" refuses a sensitive one).
    exact = DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(), "location": "exact", "sensitive": [], "l": 1})
    spec = ReleaseSpec(desensitize=exact,
                       lightweight=LightweightPolicy(**{"simplify_tolerance_m": 0.5, "precision_m": 0.5, **lightweight}))
    out = tmp_path_factory.mktemp("release")
    report = run_release(corpus, spec, KEY, out / "r")
    return report, pq.read_table(out / "r" / report["outputs"]["geoparquet"]["path"])


@pytest.fixture(scope="module")
def rooms(corpus, tmp_path_factory):
    """The released rooms beside their true footprints and the corpus's own grid codes."""
    from releases.desensitize import pseudonymize
    from releases.pipeline import subkey

    report, released = _release(corpus, tmp_path_factory)
    raw = pq.read_table(corpus, columns=["unit_id", "geometry", "grid_code"])
    pseudonyms = pseudonymize(raw.column("unit_id"), subkey(KEY, "pseudonyms")).to_numpy(zero_copy_only=False)
    order = np.argsort(pseudonyms)
    ids = released.column("unit_id").to_numpy(zero_copy_only=False)
    at = order[np.searchsorted(pseudonyms[order], ids)]
    assert (pseudonyms[at] == ids).all()
    # In the corpus's order: the writer orders each batch by position (for the bbox statistics),
    # and the landmark draws below should not depend on the file's row order.
    by_corpus = np.argsort(at, kind="stable")
    released, at = released.take(pa.array(by_corpus)), at[by_corpus]
    truth = shapely.from_wkb(raw.column("geometry").to_numpy(zero_copy_only=False))[at]
    return report, released, truth, raw.column("grid_code").take(pa.array(at))


def _frame(report):
    from releases.shift import LocalFrame

    return LocalFrame(*report["shift"]["mode"]["origin"])


def _metres(frame, geometries) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (n, 4) and centres (n, 2) in metres of the frame."""
    b = shapely.bounds(geometries)
    x0, y0 = frame.to_metres(b[:, 0], b[:, 1])
    x1, y1 = frame.to_metres(b[:, 2], b[:, 3])
    boxes = np.c_[x0, y0, x1, y1]
    return boxes, np.c_[(x0 + x1) / 2, (y0 + y1) / 2]


def _errors(guess: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    error = np.hypot(*(guess - truth).T)
    return {"median_m": float(np.median(error)), "within_1m": float(np.mean(error < 1.0)),
            "within_5m": float(np.mean(error < 5.0))}


def _spline(t: np.ndarray) -> np.ndarray:
    """The quadratic B-spline that blends the smooth field's lattice nodes."""
    a = np.abs(t)
    return np.where(a <= 0.5, 0.75 - t * t, np.where(a <= 1.5, 0.5 * (1.5 - a) ** 2, 0.0))


def _field_basis(report, points: np.ndarray, nodes=None):
    """Each point's weight on each lattice node of the published smooth-field model."""
    step = report["shift"]["mode"]["wavelength_m"] / 2
    u, v = points[:, 0] / step, points[:, 1] / step
    if nodes is None:
        i = np.arange(np.floor(u.min() + 0.5) - 2, np.floor(u.max() + 0.5) + 3)
        j = np.arange(np.floor(v.min() + 0.5) - 2, np.floor(v.max() + 0.5) + 3)
        nodes = np.array(np.meshgrid(i, j)).reshape(2, -1).T
    return _spline(u[:, None] - nodes[:, 0]) * _spline(v[:, None] - nodes[:, 1]), nodes


def _cell_attack(report, released_boxes, centres, codes: np.ndarray) -> np.ndarray:
    """Guessed true centres from the units' cells (see the module doc): a unit's offset
    d = released - true lies in an interval per axis, since its true box lies in its cell;
    the published field model, linear in its node vectors, is fitted to the intervals'
    middles (weighted by their narrowness) and evaluated where the units truly are."""
    from corpora import grid

    frame = _frame(report)
    known = np.array([isinstance(c, str) and len(c) > 1 for c in codes])
    lon0, lat0, _, lon1, lat1, _ = grid.decode(np.where(known, codes, "G").astype(str))
    x0, y0 = frame.to_metres(lon0, lat0)
    x1, y1 = frame.to_metres(lon1, lat1)
    low = np.c_[released_boxes[:, 2] - x1, released_boxes[:, 3] - y1]
    high = np.c_[released_boxes[:, 0] - x0, released_boxes[:, 1] - y0]
    middle, weight = (low + high) / 2, 1.0 / np.maximum(high - low, 0.5) ** 2
    weight[~known] = 0.0
    guess = centres
    for _ in range(3):  # the field acts at the true positions: refit where the guess puts them
        basis, nodes = _field_basis(report, guess)
        offset = np.empty_like(centres)
        for axis in (0, 1):
            w = np.sqrt(weight[:, axis])
            coefficients = np.linalg.lstsq(basis * w[:, None], middle[:, axis] * w, rcond=None)[0]
            offset[:, axis] = basis @ coefficients
        guess = centres - offset
    return guess


def _code_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Every text column holding grid codes, alone or before a "/" (an aggregate's id)."""
    found = {}
    for name in table.column_names:
        if name == "geometry" or not pa.types.is_string(table.schema.field(name).type):
            continue
        column = table.column(name).combine_chunks()
        match = pc.extract_regex(column, r"^(?P<code>G[0-7]+)(?:/|$)")
        if match.null_count < len(column) and match.null_count <= column.null_count + len(column) // 10:
            found[name] = match.field("code").to_numpy(zero_copy_only=False)
    return found


def _landmark_attack(centres, offsets, column, rng) -> np.ndarray:
    """Guessed true centres: the offset fitted over LANDMARKS units with a thin-plate spline
    over (x, y) or, given a column, (x, y, column scaled to the layout's spread)."""
    spread = centres.std(axis=0).mean()
    features = centres if column is None else np.c_[
        centres, (column - column.mean()) / (column.std() or 1.0) * spread
        + rng.normal(0, 1e-3 * spread, len(column))  # ties (a floor band) would make the fit singular
    ]
    # Landmarks are places: stacked rooms share one footprint and count once.
    _, places = np.unique(np.round(centres, 1), axis=0, return_index=True)
    guesses = []
    for _ in range(DRAWS):
        marks = rng.choice(places, LANDMARKS, replace=False)
        fit = RBFInterpolator(features[marks], offsets[marks], kernel="thin_plate_spline")
        guesses.append(centres - fit(features))
    return np.concatenate(guesses)


def _geometry_baseline(frame, released, truth):
    released_boxes, centres = _metres(frame, released)
    _, true_centres = _metres(frame, truth)
    return released_boxes, centres, true_centres


def _geometries(table: pa.Table) -> np.ndarray:
    return shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))


def test_the_grid_code_attack_finds_a_code_of_the_true_geometry_and_not_the_released_one(rooms):
    report, released, truth, corpus_codes = rooms
    frame = _frame(report)
    boxes, centres, true_centres = _geometry_baseline(frame, _geometries(released), truth)
    geometry_alone = _errors(centres, true_centres)
    assert geometry_alone["within_5m"] == 0.0  # the shift moves everything by tens of metres

    # The attack works: the corpus's own code (what the release used to carry) undoes the shift.
    corpus_codes = corpus_codes.to_numpy(zero_copy_only=False)
    leaked = _errors(_cell_attack(report, boxes, centres, corpus_codes), true_centres)
    assert leaked["within_1m"] > 0.6 and leaked["within_5m"] > 0.9, leaked

    codes = _code_columns(released)
    assert "grid_code" in codes
    for name, values in codes.items():
        attacked = _errors(_cell_attack(report, boxes, centres, values), true_centres)
        assert attacked["within_5m"] <= geometry_alone["within_5m"] + 0.01, (name, attacked, geometry_alone)
        assert attacked["median_m"] >= 0.9 * geometry_alone["median_m"], (name, attacked, geometry_alone)


def test_released_grid_codes_are_the_cells_of_the_released_geometry(rooms):
    from releases.columns import grid_codes, max_code_level

    report, released, _, corpus_codes = rooms
    again = grid_codes(shapely.bounds(_geometries(released)), released.column("z_min").to_numpy(),
                       released.column("z_max").to_numpy(), precision_m=report["lightweight"]["precision_m"])
    assert again.equals(released.column("grid_code").combine_chunks())
    # Never finer than the release precision; the corpus's codes only where a coarse cell
    # holds a unit both where it is and where it was moved to.
    level = max_code_level(report["lightweight"]["precision_m"])
    assert pc.max(pc.utf8_length(released.column("grid_code"))).as_py() <= level + 1
    assert pc.mean(pc.equal(released.column("grid_code"), corpus_codes).cast(pa.float64())).as_py() < 0.5


def test_no_number_column_locates_units_better_than_the_geometry(rooms):
    report, released, truth, _ = rooms
    frame = _frame(report)
    _, centres, true_centres = _geometry_baseline(frame, _geometries(released), truth)
    offsets = centres - true_centres
    targets = np.tile(true_centres, (DRAWS, 1))
    alone = _errors(_landmark_attack(centres, offsets, None, np.random.default_rng(5)), targets)

    # The attack works: a column of the true easting would fail the test below.
    leaked = _errors(_landmark_attack(centres, offsets, true_centres[:, 0], np.random.default_rng(5)), targets)
    assert leaked["median_m"] < 0.9 * alone["median_m"], (leaked, alone)

    numeric = [f.name for f in released.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    assert {"z_min", "z_max", "area_m2", "monthly_rent"} <= set(numeric)
    for name in numeric:
        values = pc.cast(released.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        present = np.isfinite(values)
        if present.sum() < len(values) // 2 or np.ptp(values[present]) == 0:
            continue  # mostly empty or constant: nothing to fit
        values = np.where(present, values, np.nanmedian(values))
        attacked = _errors(_landmark_attack(centres, offsets, values, np.random.default_rng(5)), targets)
        assert attacked["median_m"] >= 0.9 * alone["median_m"], (name, attacked, alone)
        assert attacked["within_1m"] <= alone["within_1m"] + 0.02, (name, attacked, alone)


def test_area_is_the_area_of_the_released_footprint_not_the_true_one(rooms):
    from releases.columns import metres_per_degree

    report, released, truth, _ = rooms
    geometries = _geometries(released)
    mx, my = metres_per_degree(shapely.get_y(shapely.centroid(geometries)))
    released_area = shapely.area(geometries) * mx * my
    true_area = shapely.area(truth) * mx * my
    binned = pc.cast(released.column("area_m2"), pa.float64()).to_numpy(zero_copy_only=False)
    rooms_ = np.isfinite(binned) & (binned < 200)  # top-coded at 200 m²
    # Each value is the 10 m² bin of the shifted footprint, give or take the rounding of its
    # corners to the release grid (a quarter metre along its walls); the smooth field made
    # many differ from the true bins.
    rounding = shapely.length(geometries) * np.sqrt(mx * my) * report["lightweight"]["precision_m"] / 2
    inside = ((released_area >= binned - rounding) & (released_area < binned + 10 + rounding))[rooms_]
    assert inside.all()
    assert (np.floor(true_area[rooms_] / 10) * 10 != binned[rooms_]).mean() > 0.01


def test_a_grid_level_release_names_cells_of_the_shifted_units(corpus, tmp_path_factory):
    """At level of detail "grid" an aggregate's id and code name a cell: the cell of its
    shifted members, so each aggregate's released box lies in the cell it names."""
    report, aggregates = _release(corpus, tmp_path_factory, level_of_detail="grid", grid_level=20)
    frame = _frame(report)
    boxes, centres = _metres(frame, _geometries(aggregates))
    codes = _code_columns(aggregates)
    assert {"unit_id", "grid_code"} <= set(codes)
    for name in ("unit_id", "grid_code"):
        # Every released box lies in the cell it names (to a quantization step), so the
        # cells say nothing the released geometry does not.
        from corpora import grid

        lon0, lat0, _, lon1, lat1, _ = grid.decode(codes[name].astype(str))
        x0, y0 = frame.to_metres(lon0, lat0)
        x1, y1 = frame.to_metres(lon1, lat1)
        step = report["lightweight"]["precision_m"]
        assert (boxes[:, 0] >= x0 - step).all() and (boxes[:, 2] <= x1 + step).all(), name
        assert (boxes[:, 1] >= y0 - step).all() and (boxes[:, 3] <= y1 + step).all(), name
