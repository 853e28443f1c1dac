"""Benchmark: the whole release pipeline against the way a user would do it with geopandas.

    python bench/release.py --rooms 1000000

It generates a district (not timed), then, in this one process:
1. runs Miliao's release pipeline (desensitize, declassify, shift, lightweight, GeoParquet),
   and reads the peak memory right after it, before anything else runs;
2. measures the I/O floor: pyarrow reading the corpus and writing the same number of
   rows back, which no pipeline can beat;
3. runs a geopandas baseline doing the same steps the usual way (row-wise `apply` for
   pseudonyms, PII scrubbing (regexes, then jieba's person tags and the dropped columns'
   names, row by row) and the shift, `groupby` for k-anonymity, `sjoin` for zones,
   `to_crs` + area for the released areas, a `groupby` per floor snapping each room to its
   floor's vertices and `simplify_coverage` for topology-preserving lightening, `set_precision`,
   the grid encoder on the released bounds, and `sjoin(predicate="touches")` on a sample of the
   written file for the contacts), on a subset of the rooms, scaled to N.

The last line is:
RESULT rooms=N seconds=S rooms_per_s=R ratio_vs_geopandas=X ratio_vs_io_floor=Y peak_mb=M
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from corpora.generator import generate_district  # noqa: E402
from corpora.store import write_corpus  # noqa: E402
from releases.pipeline import ReleaseSpec, run_release, subkey  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def io_floor(corpus: Path, out: Path, rows: int) -> float:
    started = time.perf_counter()
    table = pq.read_table(corpus)
    pq.write_table(table.slice(0, rows), out, compression="zstd")
    return time.perf_counter() - started


def geopandas_baseline(corpus: Path, out: Path, rooms: int, spec: ReleaseSpec, key: bytes) -> tuple[float, int]:
    """The same steps the way a geopandas user writes them. Returns (seconds, rooms done)."""
    import geopandas as gpd
    import pandas as pd
    import shapely
    from corpora import grid
    from releases.pipeline import build_shift

    started = time.perf_counter()
    frame = pd.read_parquet(corpus).iloc[: int(rooms * 1.09)]  # rooms plus the other kinds, as in the corpus
    gdf = gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=gpd.GeoSeries.from_wkb(frame["geometry"]),
                           crs="EPSG:4490")
    done = int((gdf["kind"] == "room").sum())
    policy = spec.desensitize
    # Declassify: drop sensitive categories and everything within the buffer of them.
    removed = gdf["sensitive_category"].isin(spec.declassify.remove_categories)
    zones = gdf[removed].to_crs("EPSG:4549").buffer(spec.declassify.zone_buffer_m).to_crs("EPSG:4490")
    gdf = gdf[~removed]
    hit = gpd.sjoin(gdf, gpd.GeoDataFrame(geometry=zones, crs="EPSG:4490"), predicate="intersects", how="inner")
    gdf = gdf.drop(index=hit.index.unique())
    # Desensitize: drop, pseudonymize and scrub row by row, generalize, k-anonymize. The names
    # in the dropped columns are a gazetteer for the free text, beside jieba's person tags.
    import jieba.posseg

    known = set().union(*(set(gdf[c].dropna().astype(str)) for c in policy.drop if c in gdf.columns))
    gdf = gdf.drop(columns=list(policy.drop))
    pkey = subkey(key, "pseudonyms")
    for column in policy.pseudonymize:
        gdf[column] = gdf[column].apply(
            lambda v: hmac.new(pkey, v.encode(), hashlib.sha256).hexdigest()[:16] if isinstance(v, str) else None
        )
    patterns = [(re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[身份证]"), (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), "[电话]"),
                (re.compile(r"[沪京津渝冀晋辽吉黑苏浙皖闽赣鲁豫鄂湘粤琼川贵云陕甘青蒙桂藏宁新][A-Z][A-Z0-9]{5,6}"), "[车牌]")]

    def scrub(text):
        if not isinstance(text, str):
            return text
        for pattern, placeholder in patterns:
            text = pattern.sub(placeholder, text)
        return "".join("[姓名]" if flag in ("nr", "nrfg", "nrt") or word in known else word
                       for word, flag in jieba.posseg.cut(text))

    for column in policy.free_text:
        gdf[column] = gdf[column].apply(scrub)
    for column, rule in policy.generalize.items():
        values = gdf[column].astype("float64")
        if "top" in rule:
            values = values.clip(upper=rule["top"])
        if "bin" in rule:
            values = (values // rule["bin"]) * rule["bin"]
        if "bands" in rule:
            edges = np.asarray(rule["bands"])
            values = pd.Series(edges[np.clip(np.searchsorted(edges, values, side="right") - 1, 0, None)],
                               index=values.index).where(values.notna())
        gdf[column] = values
    qi = list(policy.quasi_identifiers)
    if policy.location == "cell":
        # Location as a quasi-identifier: each room takes the finest grid cell (lon/lat bins
        # of 512 / 2**level degrees) whose class still holds k rooms, one groupby per level.
        bounds = gdf.geometry.bounds
        lon, lat = (bounds["minx"] + bounds["maxx"]) / 2, (bounds["miny"] + bounds["maxy"]) / 2
        coarsest, finest = policy.cell_levels
        cell = pd.Series(None, index=gdf.index, dtype=object)
        for level in range(finest, coarsest - 1, -1):
            size = 512 / 2**level
            column, row = (lon // size).astype("int64"), (lat // size).astype("int64")
            gdf["_cell"] = column.astype(str) + ":" + row.astype(str) + f"@{level}"
            sizes = gdf.groupby(["_cell", "kind", *qi], dropna=False)["_cell"].transform("size")
            cell = cell.where(cell.notna() | (sizes < policy.k), gdf["_cell"])
        gdf = gdf[cell.notna()].drop(columns="_cell")

        def cell_box(code):  # "column:row@level" to its lon/lat box, row by row
            place, level = code.split("@")
            column, row = map(int, place.split(":"))
            size = 512 / 2 ** int(level)
            return shapely.box(column * size, row * size, (column + 1) * size, (row + 1) * size)

        gdf["geometry"] = gpd.GeoSeries(cell[cell.notna()].apply(cell_box), index=gdf.index, crs="EPSG:4490")
        exact_rooms = pd.Series(False, index=gdf.index)
    else:
        sizes = gdf.groupby(qi, dropna=False)[qi[0]].transform("size")
        gdf = gdf[sizes >= policy.k]
        raw = gdf.geometry.copy()
        exact_rooms = gdf["kind"] == "room"
        # Node each floor's rooms (a vertex of one on a wall of another goes into that wall), so
        # that shared walls survive the shift and the rounding.
        floors = gdf[exact_rooms].groupby(["building_id", "floor"]).geometry
        gdf.loc[exact_rooms, "geometry"] = floors.transform(
            lambda walls: walls.apply(lambda room: shapely.snap(room, walls.union_all(), 1e-8))
        )
    rooms = exact_rooms  # rooms released with their own footprints: a coverage per floor
    # Shift every geometry with the same keyed field, one geometry at a time.
    mode = build_shift(spec.shift, subkey(key, "shift"))
    gdf["geometry"] = gdf.geometry.apply(
        lambda geom: shapely.transform(geom, lambda xy: np.column_stack(mode.apply(xy[:, 0], xy[:, 1])))
    )
    # Released areas come from the shifted footprints.
    metric = gdf.to_crs("EPSG:4549")
    gdf["area_m2"] = metric.area.where(gdf.geom_type.isin(["Polygon", "MultiPolygon"]))
    # Lighten: round to the release precision, then simplify in metres, each floor as a coverage.
    gdf["geometry"] = shapely.set_precision(gdf.geometry.values, 1e-5)
    tolerance = spec.lightweight.simplify_tolerance_m
    metric = gdf.to_crs("EPSG:4549")
    if rooms.any():
        floors = metric[rooms].groupby(["building_id", "floor"]).geometry
        metric.loc[rooms, "geometry"] = floors.transform(lambda walls: walls.simplify_coverage(tolerance))
    metric.loc[~rooms, "geometry"] = metric[~rooms].geometry.simplify(tolerance, preserve_topology=True)
    gdf = metric.to_crs("EPSG:4490")
    # Grid codes of the released geometry.
    bounds = gdf.bounds
    gdf["grid_code"] = grid.adaptive_codes(bounds.minx, bounds.miny, gdf["z_min"], bounds.maxx, bounds.maxy,
                                           gdf["z_max"], max_level=26)
    gdf.to_parquet(out, compression="zstd")
    if not rooms.any():  # rooms released as grid cells: no footprints to keep in contact
        return time.perf_counter() - started, done
    # Contacts: the rooms of the first floors that touched before, and whether they still do.
    sample = gpd.GeoDataFrame(gdf[rooms].iloc[:20_000][["building_id", "floor"]], geometry=raw[rooms].iloc[:20_000])
    before = gpd.sjoin(sample, sample, predicate="touches")
    before = before[(before.index < before["index_right"]) & (before["building_id_left"] == before["building_id_right"])
                    & (before["floor_left"] == before["floor_right"])]
    written = gpd.read_parquet(out).geometry
    written.index = gdf.index
    still = written.loc[before.index].touches(written.loc[before["index_right"]], align=False)
    print(f"geopandas: contacts broken {int((~still.to_numpy()).sum())} / {len(before)}")
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--baseline-rooms", type=int, default=50_000,
                        help="rooms the geopandas baseline runs on; its time is scaled to --rooms")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="miliao-bench-") as scratch:
        scratch = Path(scratch)
        corpus = scratch / "corpus.parquet"
        summary = write_corpus(generate_district(seed=args.seed, rooms=args.rooms), corpus)
        print(f"corpus: {summary.units:,} units ({args.rooms:,} rooms), {corpus.stat().st_size / 2**20:.0f} MiB")
        spec, key = ReleaseSpec(), bytes(range(32))

        started = time.perf_counter()
        report = run_release(corpus, spec, key, scratch / "release")
        seconds = time.perf_counter() - started
        peak = peak_mb()
        print(f"miliao:    {seconds:8.2f} s  {args.rooms / seconds:10,.0f} rooms/s  "
              f"units {report['units_in']:,} -> {report['units_out']:,}  peak {peak:,.0f} MiB")
        contacts = report["lightweight"]["topology"]
        print(f"miliao:    contacts broken {contacts['broken']} / {contacts['contacts']} on the written file")

        floor = io_floor(corpus, scratch / "floor.parquet", report["units_out"])
        print(f"io floor:  {floor:8.2f} s")

        baseline_rooms = min(args.baseline_rooms, args.rooms)
        gp_seconds, gp_rooms = geopandas_baseline(corpus, scratch / "geopandas.parquet", baseline_rooms, spec, key)
        gp_scaled = gp_seconds * args.rooms / max(gp_rooms, 1)
        print(f"geopandas: {gp_seconds:8.2f} s on {gp_rooms:,} rooms, {gp_scaled:.1f} s scaled to {args.rooms:,}")

    print(
        f"RESULT rooms={args.rooms} seconds={seconds:.2f} rooms_per_s={args.rooms / seconds:.0f} "
        f"ratio_vs_geopandas={gp_scaled / seconds:.1f} ratio_vs_io_floor={seconds / floor:.1f} peak_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
