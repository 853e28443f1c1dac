"""The re-location figures of releases of one generated district, at scale.

    python bench/attacks.py --rooms 100000

It generates a district (not timed), then builds a release under each policy below and prints
the figures its report carries (``report["attacks"]``): the share of released units that a
person with a web map puts back within 1 m and 5 m, the share of rebuilt buildings matched,
and the landmark residuals for k = 1, 5 and 20 on the release's own layout, beside the
uniform-point residuals that the shift alone gives (``releases.shift.attack_residuals``).
Also the seconds the attacks took, measured apart from the release.

The last line is:
RESULT rooms=N within_1m=X within_5m=Y landmarks_m=A/B/C   (the default policy)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]

import pyarrow.parquet as pq  # noqa: E402

from corpora.generator import ORIGIN, generate_district  # noqa: E402
from corpora.store import write_corpus  # noqa: E402
from releases import relocation  # noqa: E402
from releases.pipeline import ReleaseSpec, build_shift, run_release, subkey  # noqa: E402
from releases.shift import attack_residuals  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "releases" / "attacks"))  # the policy the attack tests use
from fingerprint_attacks import exact_rooms_spec  # noqa: E402

_SPEC = exact_rooms_spec()  # rooms alone at their footprints, building pseudonym kept, no rent l
EXACT = {"desensitize": _SPEC["desensitize"], "declassify": _SPEC["declassify"]}
# Floors, buildings and cells stand for their rooms (location "aggregate"), grouped by building.
AGGREGATE = {"location": "aggregate", "drop": EXACT["desensitize"]["drop"],
             "pseudonymize": EXACT["desensitize"]["pseudonymize"]}
POLICIES = {
    "default (rooms in grid cells)": {},
    "exact rooms (smooth 100 m / 4 km)": EXACT,
    "exact rooms, smooth 300 m / 2 km": {**EXACT, "shift": {"mode": "smooth", "max_offset_m": 300.0,
                                                           "wavelength_m": 2000.0}},
    "exact rooms, cells 500 m, 300 m": {**EXACT, "shift": {"mode": "cell"}},
    "exact rooms, GCJ-02": {**EXACT, "shift": {"mode": "gcj02"}},
    "floors (aggregate)": {"desensitize": AGGREGATE, "lightweight": {"level_of_detail": "floor"}},
    "buildings (aggregate)": {"desensitize": AGGREGATE, "lightweight": {"level_of_detail": "building"}},
    "grid cells (aggregate)": {"desensitize": AGGREGATE, "lightweight": {"level_of_detail": "grid"}},
}


def spec_with(changes: dict) -> ReleaseSpec:
    spec = ReleaseSpec().to_dict()
    for name, value in changes.items():
        spec[name] = {**spec[name], **value} if name != "shift" else value
    return ReleaseSpec.from_dict(spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    key = bytes(range(32))
    timings: list[float] = []
    original = relocation.attack_report

    def timed(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            timings.append(time.perf_counter() - started)

    relocation.attack_report = timed  # the pipeline looks it up at call time
    with tempfile.TemporaryDirectory(prefix="miliao-attacks-") as scratch:
        corpus = Path(scratch) / "corpus.parquet"
        write_corpus(generate_district(seed=args.seed, rooms=args.rooms), corpus)
        print(f"corpus: {pq.ParquetFile(corpus).metadata.num_rows:,} units ({args.rooms:,} rooms)")
        print(f"{'policy':40} {'units':>7} {'bldgs':>6} {'match':>6} {'≤1 m':>6} {'≤5 m':>6} "
              f"{'landmarks k=1/5/20 (m)':>24} {'uniform k=1/5/20 (m)':>22} {'attack s':>8}")
        first = None
        for name, changes in POLICIES.items():
            spec = spec_with(changes)
            report = run_release(corpus, spec, key, Path(scratch) / "release")
            moved = report["attacks"]["relocation"]
            marks = report["attacks"]["landmarks"]["residual_m"]
            uniform = attack_residuals(build_shift(spec.shift, subkey(key, "shift")), centre_lon=ORIGIN[0],
                                       centre_lat=ORIGIN[1])
            shares = moved["buildings"]["share_matched"]
            print(f"{name:40} {moved['units']:>7,} {moved['buildings']['rebuilt']:>6} "
                  f"{'-' if shares is None else f'{shares:.1%}':>6} {moved['within_1m']:>6.1%} {moved['within_5m']:>6.1%} "
                  f"{'/'.join('-' if marks[k] is None else f'{marks[k]:.2f}' for k in ('1', '5', '20')):>24} "
                  f"{'/'.join(f'{uniform[k]:.1f}' for k in (1, 5, 20)):>22} {timings[-1]:>8.2f}")
            first = first or (moved, marks)
    moved, marks = first
    print(f"RESULT rooms={args.rooms} within_1m={moved['within_1m']} within_5m={moved['within_5m']} "
          f"landmarks_m={marks['1']}/{marks['5']}/{marks['20']}")


if __name__ == "__main__":
    main()
