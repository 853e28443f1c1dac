"""Benchmark: recipient fingerprints on a large generated district, against their recipients.

    python bench/fingerprint.py --rooms 100000

It builds the district and its conditional release with the real pipeline (not timed), then:
1. times the download path: finding the mark groups of the release (once per release file
   and process), and a fingerprinted GeoParquet package against the same package unmarked
   (the baseline: what a download costs without a fingerprint);
   Both run in a child process, whose peak memory is the download path's alone; the
   release is built in another.
2. leaks 1 %, 5 % and 10 % of recipients' copies after every attack of the attack suite
   (tests/releases/attacks/fingerprint_attacks.py: the same code the suite asserts with) and
   traces each against all 20 licences: the share traced (single recipient: named; collusion:
   a colluder accused, nobody else), and every false accusation;
3. measures the limits: rounding coarser than the precision, moves larger than it, 4
   colluders, basemap-assisted residual stripping with footprints of several accuracies, and
   leaks of a few whole buildings;
4. scores 10,000 fresh innocent keys, each once, against the leaks at the accusation threshold
   (alpha = 1e-6 over 20 candidates), and 1,000 of them against every 10 % leak at looser
   thresholds, where the bound's share can be compared with what is seen.

The last line is:
RESULT rooms=N groups=G single_min_10pct=.. pair_min_10pct=.. triple_min_10pct=.. false_accusations=..
       package_overhead=X download_peak_mb=D detect_ms=.. peak_mb=M
(download_peak_mb: the child process that found the groups and wrote the packages; peak_mb:
this process, which holds every recipient's copy for the attacks.)
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO), str(REPO / "tests" / "releases" / "attacks")]

import numpy as np  # noqa: E402

import fingerprint_attacks as fa  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def share(trials) -> str:
    return f"{sum(t.traced for t in trials) / len(trials):.0%}"


def download_path(workdir: Path, precision_m: float, key: bytes, code_key: bytes) -> dict:
    """Run in a child process: its peak memory is the download path's alone."""
    from access import packages

    source = next((workdir / "release").glob("*.parquet"))
    _, grouping = timed(packages.release_groups, source, precision_m)
    marked = packages.PackageSpec(source=source, fingerprint_key=key, precision_m=precision_m, code_key=code_key)
    plain = packages.PackageSpec(source=source)
    runs = {"marked": [], "plain": []}
    for _ in range(3):
        for name, spec in (("plain", plain), ("marked", marked)):
            runs[name].append(timed(packages.write_geoparquet, spec, workdir / f"{name}.parquet")[1])
    marked_s, plain_s = statistics.median(runs["marked"]), statistics.median(runs["plain"])
    units = int(packages.pq.ParquetFile(source).metadata.num_rows)
    return {"units": units, "grouping_s": grouping, "marked_s": marked_s, "plain_s": plain_s,
            "marked_units_per_s": units / marked_s, "overhead": marked_s / plain_s, "peak_mb": peak_mb()}


def limits(s: fa.Scenario) -> dict[str, fa.Attack]:
    from releases.columns import grid_step_deg

    footprints = fa.true_footprints(s)
    own = fa._own  # noqa: SLF001 - the suite's helper

    def basemap(noise):
        def make(s, who, rows, rng):
            if who[0] not in s.stripped:
                s.stripped[who[0]] = fa.strip_with_basemap(s.copies[who[0]], s.buildings, footprints, s.step_deg,
                                                           shift=s.shift, noise_m=noise, rng=rng)
            return s.stripped[who[0]][rows]
        return fa.Attack(1, make)

    def wide_jitter(s, who, rows, rng):  # two steps per axis: past the precision
        return fa.jitter(fa.jitter(s.copies[who[0]][rows], rng, s.step_deg, s.buildings[rows]), rng, s.step_deg,
                         s.buildings[rows])

    return {
        "round 2 m (GK metres)": fa.Attack(1, lambda s, who, rows, rng: fa.round_metric(s.copies[who[0]][rows], 2.0)),
        "round 5 m (GK metres)": fa.Attack(1, lambda s, who, rows, rng: fa.round_metric(s.copies[who[0]][rows], 5.0)),
        "round 2 m (release grid)": fa.Attack(
            1, lambda s, who, rows, rng: fa.round_degrees(s.copies[who[0]][rows], grid_step_deg(2.0))
        ),
        "jitter up to 2 steps per building": fa.Attack(1, wide_jitter),
        "basemap strip, footprints exact": basemap(0.0),
        "basemap strip, footprints +-0.1 m": basemap(0.1),
        "basemap strip, footprints +-0.25 m": basemap(0.25),
        "basemap strip, footprints +-1 m": basemap(1.0),
        "4: average, snapped to grid": fa.Attack(4, lambda s, who, rows, rng: fa.average(own(s, who, rows), s.step_deg)),
        "4: interleave per unit": fa.Attack(4, lambda s, who, rows, rng: fa.interleave(own(s, who, rows), rng)),
        "4: interleave per building": fa.Attack(
            4, lambda s, who, rows, rng: fa.interleave(own(s, who, rows), rng, s.buildings[rows])
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=50, help="leaks per attack and size")
    parser.add_argument("--innocents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="miliao-fingerprint-") as scratch:
        workdir = Path(scratch)
        # The release is built in a child process, so that the peak memory below is the
        # download path's and the detector's, not the pipeline's (bench/release.py has that).
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            _, built = timed(lambda: pool.submit(fa.build_release, workdir, rooms=args.rooms, seed=args.seed).result())
        s = fa.build_scenario(workdir, rooms=args.rooms, seed=args.seed, leakers=8, built=True)
        groups = len(np.unique(s.groups))
        print(f"district of {args.rooms} rooms: {len(s.base)} released units, {groups} mark groups, "
              f"{len(np.unique(s.buildings))} buildings (built in {built:.0f} s, not timed)")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            path = pool.submit(download_path, workdir, s.precision_m, s.keys["licence-00"], s.code_key).result()
        print(f"download path: mark groups found in {path['grouping_s']:.2f} s; package of {path['units']} units "
              f"{path['marked_s']:.2f} s fingerprinted vs {path['plain_s']:.2f} s unmarked "
              f"(x{path['overhead']:.2f}, {path['marked_units_per_s']:,.0f} units/s), peak {path['peak_mb']:.0f} MiB")

        everything, tenth, detect_s = [], [], []
        print(f"\n{'attack':36s}" + "".join(f"{f:>8.0%}" for f in fa.SIZES) + "   wrong")
        worst = {1: 1.0, 2: 1.0, 3: 1.0}
        for attack, how in fa.ATTACKS.items():
            row, wrong = [], 0
            for fraction in fa.SIZES:
                started = time.perf_counter()
                trials = fa.run_trials(s, attack, fraction, args.trials, rng)
                if fraction == 0.10:
                    detect_s.append((time.perf_counter() - started) / args.trials)
                    tenth += trials
                    worst[how.colluders] = min(worst[how.colluders], sum(t.traced for t in trials) / len(trials))
                everything += trials
                wrong += sum(len(t.wrong) for t in trials)
                row.append(share(trials))
            print(f"{attack:36s}" + "".join(f"{r:>8s}" for r in row) + f"{wrong:>8d}")
            s.stripped.clear()

        print(f"\n{'limit':36s}" + "".join(f"{f:>8.0%}" for f in fa.SIZES) + "   wrong")
        for name, how in limits(s).items():
            row, wrong = [], 0
            for fraction in fa.SIZES:
                trials = fa.run_trials(s, how, fraction, args.trials, rng)
                everything += trials
                wrong += sum(len(t.wrong) for t in trials)
                row.append(share(trials))
            print(f"{name:36s}" + "".join(f"{r:>8s}" for r in row) + f"{wrong:>8d}")
            s.stripped.clear()

        print(f"\n{'leak of whole buildings':36s}{'traced':>8s}{'groups':>8s}{'units':>8s}   wrong")
        for count in (2, 3, 5, 8, 12, 20):
            how = fa.Attack(1, lambda s, who, rows, rng: s.copies[who[0]][rows],
                            rows=lambda s, rng, count=count: fa.building_rows(s, count, rng))
            trials = fa.run_trials(s, how, 0.0, args.trials, rng)
            everything += trials
            units = statistics.median(t.observation.matched_units for t in trials)
            print(f"{f'{count} buildings':36s}{share(trials):>8s}{count:>8d}{units:>8.0f}"
                  f"{sum(len(t.wrong) for t in trials):>8d}")

        false_in_trials = sum(len(t.wrong) for t in everything)
        innocents = fa.innocent_symbols(s, args.innocents, rng)
        per_leak = -(-args.innocents // len(everything))
        accused = 0
        for i, trial in enumerate(everything):
            batch = innocents[i * per_leak:(i + 1) * per_leak]
            threshold = trial.observation.threshold(1e-6 / len(s.keys))
            if len(batch) and threshold is not None:
                accused += int((trial.observation.scores(batch[:, trial.observation.rows]) >= threshold).sum())
        scored, over = fa.innocents_over(tenth, innocents[:1000], (1e-3, 1e-2, 1e-1))
        print(f"\nfalse accusations: {false_in_trials} in {len(everything)} traced leaks x {len(s.keys)} licences; "
              f"{accused} of {args.innocents} fresh innocent keys, each scored once against a leak at alpha = 1e-6")
        print("innocent scores over a looser threshold, seen / bound: "
              + ", ".join(f"{over[level] / scored:.2e} / {level:g}" for level in over)
              + f" ({scored} scores)")
        detect_ms = 1000 * statistics.median(detect_s)
        print(f"detection: {detect_ms:.0f} ms per 10 % leak (median over attacks, attack included)")
        print(
            f"RESULT rooms={args.rooms} groups={groups} single_min_10pct={worst[1]:.2f} pair_min_10pct={worst[2]:.2f} "
            f"triple_min_10pct={worst[3]:.2f} false_accusations={false_in_trials + accused} "
            f"package_overhead={path['overhead']:.2f} download_peak_mb={path['peak_mb']:.0f} detect_ms={detect_ms:.0f} "
            f"peak_mb={peak_mb():.0f}"
        )


if __name__ == "__main__":
    main()
