"""The names attack on a large release: every person name of a generated corpus (owners,
occupants, and the contacts inside its notes) looked for in every output file.

    python bench/names.py --rooms 100000

The in-suite attack (tests/releases/attacks/test_names.py) runs the same search on 20,000
rooms. The last line is:
RESULT rooms=N names=M found=F files=K release_seconds=S
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO), str(REPO / "tests" / "releases" / "attacks")]

from corpora.generator import district_units  # noqa: E402
from corpora.store import write_corpus  # noqa: E402
from names_support import corpus_names, leaked  # noqa: E402
from releases.pipeline import OUTPUT_FORMATS, ReleaseSpec, run_release  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = district_units(seed=args.seed, rooms=args.rooms)
        write_corpus([corpus], tmp / "corpus.parquet")
        started = time.perf_counter()
        report = run_release(tmp / "corpus.parquet", ReleaseSpec(outputs=OUTPUT_FORMATS), b"b" * 32, tmp / "out")
        seconds = time.perf_counter() - started
        names = corpus_names(corpus)
        found = leaked(corpus, tmp / "out")
    total = len(set().union(*names.values()))
    print(f"corpus: {args.rooms:,} rooms, {total:,} distinct person names "
          + ", ".join(f"{source} {len(group):,}" for source, group in names.items()))
    print("redacted:", {k: v for k, v in report["desensitized"]["pii_redacted"].items() if v})
    print("gazetteer:", report["desensitized"]["gazetteer"])
    hits = set()
    for file, by_source in found.items():
        file_hits = set().union(*map(set, by_source.values()))
        hits |= file_hits
        print(f"{file:18s} names found: {len(file_hits)}" + (f" e.g. {sorted(file_hits)[:5]}" if file_hits else ""))
    print(f"RESULT rooms={args.rooms} names={total} found={len(hits)} files={len(found)} "
          f"release_seconds={seconds:.1f}")


if __name__ == "__main__":
    main()
