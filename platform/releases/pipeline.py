"""The release pipeline: desensitize, declassify, shift, lightweight, write, report.

Deterministic given (corpus file, spec, release key). It streams the corpus in batches, so
memory does not grow with the corpus, in three passes over the columns each needs:

0. the units of removed categories, so that their protective zones are known everywhere
   (a zone near a batch boundary must also mask units in the next batch);
1. declassification and the generalized quasi-identifiers of every unit that survives it, with
   its location and height band where the policy locates units by grid cell, so that
   k-anonymity and l-diversity suppression sees whole equivalence classes (releases.location);
2. the release itself: keep what passes 1 kept, desensitize, put each unit at its class's
   location, coarsen heights, shift, lightweight, and write GeoParquet batch by batch.

The report ends with the attacks measured on the release's own data: re-identification of
sampled targets by building, floor and quasi-identifiers (releases.linkage).

Plain Python (pyarrow, numpy, shapely): no Django, so the benchmark and the Celery task run
the same code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from corpora.store import file_sha256, iter_corpus

from . import linkage, location
from . import shift as shifting
from .declassify import DeclassifyPolicy, declassify, grown, zone_geometries
from .desensitize import UNIT_POLICY, DesensitizePolicy, transform
from .fingerprint import grid_step_deg
from .lightweight import LightweightPolicy, lightweight
from .writers import GeoParquetStreamWriter, write_geojson, write_geopackage

ROW = "_row"  # the corpus row number, carried through pass 1 and 2 to apply suppression
OUTPUT_FORMATS = ("geoparquet", "geopackage", "geojson")
SHIFT_MODES = ("smooth", "cell", "gcj02", "none")
DATA_CLASSES = ("open", "conditional", "compute_only")
_PIPELINE_SOURCES = ("pipeline.py", "desensitize.py", "location.py", "linkage.py", "pii.py", "declassify.py",
                     "shift.py", "lightweight.py", "writers.py", "fingerprint.py")

Progress = Callable[[float, str], None]


class NothingToRelease(ValueError):
    """Every unit was withheld or suppressed; there is no release to write."""


@dataclass(frozen=True)
class ReleaseSpec:
    """A release policy: one sub-policy per step, plus the shift and the outputs."""

    data_class: str = "open"
    desensitize: DesensitizePolicy = UNIT_POLICY
    declassify: DeclassifyPolicy = DeclassifyPolicy(
        remove_categories=("military", "power_substation", "water_plant", "government_secure"),
        zone_buffer_m=50.0,
    )
    # A 100 m field over 4 km keeps shapes (area error ~3% at the median) while still
    # needing landmarks nearby to invert; see releases.shift for the measured attack.
    shift: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"mode": "smooth", "max_offset_m": 100.0, "wavelength_m": 4000.0}
    )
    lightweight: LightweightPolicy = LightweightPolicy(simplify_tolerance_m=0.5, precision_m=0.5)
    outputs: tuple[str, ...] = ("geoparquet",)

    def __post_init__(self):
        if self.data_class not in DATA_CLASSES:
            raise ValueError(f"data_class: must be one of {list(DATA_CLASSES)}, not {self.data_class!r}")
        mode = self.shift.get("mode") if isinstance(self.shift, Mapping) else None
        if mode not in SHIFT_MODES:
            raise ValueError(f"shift.mode: must be one of {list(SHIFT_MODES)}, not {mode!r}")
        if mode == "none" and self.data_class != "compute_only":
            raise ValueError("shift.mode: a release that leaves the platform must be shifted; 'none' is "
                             "only for compute-only data")
        unknown = sorted(set(self.outputs) - set(OUTPUT_FORMATS))
        if not self.outputs or unknown:
            raise ValueError(f"outputs: choose from {list(OUTPUT_FORMATS)}" + (f", not {unknown}" if unknown else ""))
        build_shift(self.shift, b"\0" * 32)  # refuse bad shift parameters now, not mid-release
        _check_location(self.desensitize, self.lightweight)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_class": self.data_class,
            "desensitize": self.desensitize.to_dict(),
            "declassify": self.declassify.to_dict(),
            "shift": dict(self.shift),
            "lightweight": self.lightweight.to_dict(),
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseSpec:
        if not isinstance(data, Mapping):
            raise ValueError("spec: must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"spec: unknown fields {unknown}")
        parts: dict[str, Any] = {}
        for name, policy in (("desensitize", DesensitizePolicy), ("declassify", DeclassifyPolicy),
                             ("lightweight", LightweightPolicy)):
            if name in data:
                try:
                    parts[name] = policy.from_dict(data[name])
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{name}: {exc}") from exc
        for name in ("data_class", "shift"):
            if name in data:
                parts[name] = data[name]
        if "outputs" in data:
            parts["outputs"] = tuple(data["outputs"])
        return cls(**parts)

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _check_location(policy: DesensitizePolicy, light: LightweightPolicy) -> None:
    """The location shape and the level of detail must agree: exact room footprints never
    travel with per-room sensitive attributes unless k holds over them."""
    level = light.level_of_detail
    if policy.location == "cell" and level != "room":
        raise ValueError(
            f"lightweight.level_of_detail: desensitize.location 'cell' releases a row per unit located by "
            f"its grid cell, so the level of detail must be 'room', not {level!r}; for floors or buildings "
            "choose location 'aggregate'"
        )
    if policy.location == "aggregate" and level == "room":
        raise ValueError(
            "lightweight.level_of_detail: desensitize.location 'aggregate' releases exact geometry only as "
            "floors, buildings or grid cells with their rooms' attributes aggregated; choose 'floor', "
            "'building' or 'grid', not 'room'"
        )
    if policy.location == "aggregate":
        dropped = [key for key in location.GROUP_KEYS.get(level, ()) if key in policy.drop]
        if dropped:
            raise ValueError(
                f"desensitize.drop: level of detail {level!r} groups rooms by {dropped[0]!r}; pseudonymize it "
                "instead of dropping it"
            )


def subkey(release_key: bytes, purpose: str) -> bytes:
    """Independent keys per step from the one release key."""
    return hmac.new(release_key, purpose.encode(), hashlib.sha256).digest()


def build_shift(params: Mapping[str, Any], key: bytes) -> shifting.ShiftMode | None:
    options = {k: v for k, v in params.items() if k != "mode"}
    mode = params.get("mode")
    try:
        if mode == "smooth":
            return shifting.SmoothFieldShift(key, **options)
        if mode == "cell":
            return shifting.CellRigidShift(key, **options)
        if mode == "gcj02":
            if options:
                raise ValueError(f"GCJ-02 takes no parameters, not {sorted(options)}")
            return shifting.GCJ02Shift()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shift: {exc}") from exc
    return None


def code_version() -> str:
    """A hash of the pipeline's own source, so a report names the code that made it."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _PIPELINE_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def _with_rows(table: pa.Table, start: int) -> pa.Table:
    return table.append_column(ROW, pa.array(np.arange(start, start + table.num_rows, dtype=np.int64)))


def _global_zones(path: Path, policy: DeclassifyPolicy, limit: int | None) -> np.ndarray:
    """Pass 0: the policy's zones plus every removed unit's protective zone, as geometries."""
    zones = [zone_geometries(policy.sensitive_zones)]
    if policy.remove_categories and policy.zone_buffer_m > 0:
        removed = _removed(path, policy, limit)
        if removed.num_rows:
            # Rooms stacked on every floor share one footprint: one zone serves them all.
            footprints = pc.unique(removed.column("geometry").combine_chunks())
            geoms = shapely.from_wkb(footprints.to_numpy(zero_copy_only=False))
            zones.append(grown(geoms, policy.zone_buffer_m))
    return np.concatenate(zones)


def _removed(path: Path, policy: DeclassifyPolicy, limit: int | None) -> pa.Table:
    """The geometries of units whose category is removed, among the first `limit` rows."""
    if limit is None:  # the whole corpus: Arrow filters while it reads, in C++
        return pq.read_table(
            path, columns=["geometry"], filters=[("sensitive_category", "in", list(policy.remove_categories))]
        )
    parts = []
    for _, table in iter_corpus(path, columns=["sensitive_category", "geometry"], limit=limit):
        mask = pc.fill_null(pc.is_in(table.column("sensitive_category"), pa.array(policy.remove_categories)), False)
        parts.append(table.filter(mask).select(["geometry"]))
    return pa.concat_tables(parts)


def _in_order(fn, items, workers: int = 2):
    """fn over items on a small thread pool, results in order, at most workers+1 in flight.

    shapely, pyarrow and numpy release the GIL in their array calls, so two batches at once
    use both cores of a small machine without holding more than a few batches in memory."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, *item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def run_release(
    corpus_path: Path,
    spec: ReleaseSpec,
    release_key: bytes,
    out_dir: Path,
    *,
    basename: str = "release",
    progress: Progress | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Build a release into `out_dir` (created; replaced atomically) and return its report."""
    report_progress = progress or (lambda percent, stage: None)
    started = time.perf_counter()
    total = pq.ParquetFile(corpus_path).metadata.num_rows
    total = min(total, limit) if limit is not None else total
    pseudonym_key = subkey(release_key, "pseudonyms")
    shift_mode = build_shift(spec.shift, subkey(release_key, "shift"))

    report_progress(1, "finding sensitive zones")
    zones = _global_zones(corpus_path, spec.declassify, limit)
    # Removed units' zones are all in `zones` already; batches need not grow them again.
    per_batch = dataclasses.replace(spec.declassify, zone_buffer_m=0.0)

    # Pass 1: who survives declassification, and what their equivalence classes are made of.
    policy, light = spec.desensitize, spec.lightweight
    schema = pq.ParquetFile(corpus_path).schema_arrow
    policy.check_columns(schema)  # a column the corpus lacks is named now, before any pass
    names = schema.names
    needed = ["unit_id", "sensitive_category", *location.needed_columns(policy, names, light.level_of_detail)]
    needed = list(dict.fromkeys(needed))

    def pass_one(start: int, table: pa.Table):
        rooms = np.flatnonzero(pc.equal(table.column("kind"), "room").to_numpy(zero_copy_only=False)) + start
        released, dreport = declassify(_with_rows(table, start), per_batch, zones=zones)
        columns = location.class_columns(released, policy, light.level_of_detail, light.grid_level)
        columns[ROW] = released.column(ROW)
        return start + table.num_rows, pa.table(columns), dreport, rooms

    survivors, declass_reports, rooms = [], [], []
    for done, survivor, dreport, room_rows in _in_order(pass_one, iter_corpus(corpus_path, columns=needed,
                                                                               limit=limit)):
        survivors.append(survivor)
        declass_reports.append(dreport)
        rooms.append(room_rows)
        report_progress(2 + 28 * done / max(total, 1), "declassifying and counting classes")
    units = pa.concat_tables(survivors) if survivors else None
    del survivors
    if units is None or units.num_rows == 0:
        classes = location.Classes(keep=np.zeros(total, bool), k_anonymity={"suppressed": 0}, location={})
    else:
        classes = location.equivalence_classes(units, units.column(ROW).to_numpy(), total, policy,
                                               level_of_detail=light.level_of_detail,
                                               latitude=_central_latitude(units))
    del units
    keep, kanon = classes.keep, classes.k_anonymity
    rooms = np.concatenate(rooms) if rooms else np.zeros(0, np.int64)
    targets = linkage.sample_rows(rooms, subkey(release_key, "linkage"))
    target_columns = linkage.target_columns(policy, names)

    # Pass 2: the release itself.
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    parquet_path = staging / f"{basename}.parquet"
    z_only = DeclassifyPolicy(height_step_m=spec.declassify.height_step_m,
                              depth_step_m=spec.declassify.depth_step_m,
                              precision_m=spec.declassify.precision_m)
    totals: dict[str, Any] = {"pii": {}, "vertices_before": 0, "vertices_after": 0, "features_out": 0,
                              "wkb_before": 0, "wkb_after": 0, "invalid": 0, "collapsed": 0,
                              "withheld_aggregates": 0}
    attack_targets, attack_buildings, attack_rows = [], [], []
    desens_report: dict[str, Any] = {}
    measurer = ThreadPoolExecutor(max_workers=1)
    measuring = None
    writer = GeoParquetStreamWriter(parquet_path)
    try:
        def pass_two(start: int, table: pa.Table):
            known = (linkage.pick_targets(start, table, targets, target_columns), linkage.pick_buildings(table))
            rows = np.flatnonzero(keep[start:start + table.num_rows]) + start
            table = table.take(pa.array(rows - start))
            if table.num_rows == 0:
                return start, None, None, None, None, known, None
            table, dreport = transform(table, spec.desensitize, pseudonym_key)
            table = classes.relocate(rows, table)
            table, _ = declassify(table, z_only)
            sample = None
            if shift_mode is not None:
                geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
                shifted = shifting.shift_geometries(geoms, shift_mode)
                if start == 0:
                    sample = _measurement_sample(table, geoms, shifted)
                table = table.set_column(table.schema.get_field_index("geometry"), "geometry",
                                         pa.array(shapely.to_wkb(shifted), pa.binary()))
            table, lreport = lightweight(table, spec.lightweight)
            table, withheld = location.withhold_small_aggregates(table, policy, light.level_of_detail)
            lreport["withheld_aggregates"] = withheld
            return start, table, dreport, lreport, sample, known, linkage.compress(table, policy)

        for start, table, dreport, lreport, sample, known, seen in _in_order(
                pass_two, iter_corpus(corpus_path, limit=limit)):
            attack_targets.append(known[0])
            attack_buildings.append(known[1])
            if table is None:
                continue
            attack_rows.append(seen)
            totals["withheld_aggregates"] += lreport["withheld_aggregates"]
            desens_report = dreport
            if sample is not None and measuring is None:
                # Measured beside the rest of pass 2; mostly numpy and scipy, off the GIL.
                measuring = measurer.submit(_shift_report, shift_mode, sample)
            for category, n in dreport["pii_redacted"]["counts"].items():
                totals["pii"][category] = totals["pii"].get(category, 0) + n
            totals["vertices_before"] += lreport["vertices"]["before"]
            totals["vertices_after"] += lreport["vertices"]["after"]
            totals["wkb_before"] += lreport["wkb_bytes"]["before"]
            totals["wkb_after"] += lreport["wkb_bytes"]["after"]
            totals["features_out"] += table.num_rows
            totals["invalid"] += lreport["topology"]["invalid"]
            totals["collapsed"] += lreport["features"].get("collapsed", 0)
            writer.write(table)
            report_progress(30 + 60 * (start + table.num_rows) / max(total, 1), "desensitizing, shifting, lightening")
        if totals["features_out"] == 0:
            raise NothingToRelease(
                f"nothing is left to release: of {total} units, declassification withheld "
                f"{sum(r['units_in'] - r['units_out'] for r in declass_reports)} and k-anonymity suppressed "
                f"{kanon['suppressed']}; relax the policy, generalize more, or use more units"
            )
        writer.close()
        outputs = {"geoparquet": {"path": parquet_path.name, "bytes": parquet_path.stat().st_size,
                                  "sha256": file_sha256(parquet_path)}}
        if {"geopackage", "geojson"} & set(spec.outputs):
            report_progress(92, "writing GeoPackage and GeoJSON")
            released = pq.read_table(parquet_path)
            if "geopackage" in spec.outputs:
                path = staging / f"{basename}.gpkg"
                write_geopackage(released, path)
                outputs["geopackage"] = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            if "geojson" in spec.outputs:
                path = staging / f"{basename}.geojson"
                write_geojson(released, path)
                outputs["geojson"] = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            del released
        if "geoparquet" not in spec.outputs:
            parquet_path.unlink()
            outputs.pop("geoparquet")
    except BaseException:
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        measurer.shutdown(wait=True)

    report = {
        "units_in": total,
        "units_out": totals["features_out"],
        "declassified": _merge_declassify(declass_reports, len(zones)),
        "desensitized": {
            "dropped": desens_report.get("dropped", {}),
            "pseudonymized": desens_report.get("pseudonymized", {}),
            "pii_redacted": totals["pii"],
            "generalized": spec.desensitize.to_dict()["generalize"],
            "k_anonymity": kanon,
            "location": classes.location,
        },
        "shift": measuring.result() if measuring is not None else _shift_report(shift_mode, None),
        "lightweight": {
            "level_of_detail": spec.lightweight.level_of_detail,
            "vertices": {"before": totals["vertices_before"], "after": totals["vertices_after"]},
            "wkb_bytes": {"before": totals["wkb_before"], "after": totals["wkb_after"]},
            "collapsed": totals["collapsed"],
            "invalid_geometries": totals["invalid"],
            "precision_m": spec.lightweight.precision_m,
            "fingerprint_grid_deg": grid_step_deg(spec.lightweight.precision_m) if spec.lightweight.precision_m else None,
        },
        "size": {
            "input_bytes": os.path.getsize(corpus_path),
            "output_bytes": {fmt: out["bytes"] for fmt, out in outputs.items()},
        },
        "hashes": {
            "input": file_sha256(corpus_path),
            "policy": spec.sha256(),
            "code": code_version(),
            "outputs": {fmt: out["sha256"] for fmt, out in outputs.items()},
        },
        "outputs": outputs,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if totals["withheld_aggregates"]:
        report["desensitized"]["location"]["withheld_aggregates"] = totals["withheld_aggregates"]
    report.setdefault("attacks", {})["reidentification"] = linkage.reidentify(
        attack_rows, [t for t in attack_targets if t is not None], attack_buildings, policy, shift_mode
    ).report()
    report["size"]["reduction"] = round(
        1 - sum(report["size"]["output_bytes"].values()) / max(report["size"]["input_bytes"], 1), 4
    )
    (staging / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=_plain))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    report_progress(100, "done")
    return json.loads(json.dumps(report, default=_plain))


def _central_latitude(units: pa.Table) -> float | None:
    """The latitude of the units' representative points (location "cell"), for cell sizes in metres."""
    if location.LAT not in units.column_names or units.num_rows == 0:
        return None
    return float(pc.mean(units.column(location.LAT)).as_py())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _merge_declassify(reports: list[dict[str, Any]], zones: int) -> dict[str, Any]:
    removed: dict[str, dict[str, int]] = {}
    for r in reports:
        for reason, counts in r["removed"].items():
            bucket = removed.setdefault(reason, {})
            for name, n in counts.items():
                bucket[name] = bucket.get(name, 0) + n
    first = reports[0] if reports else {}
    return {
        "units_in": sum(r["units_in"] for r in reports),
        "units_out": sum(r["units_out"] for r in reports),
        "removed": removed,
        "zones": zones,
        "z": first.get("z", {}),
    }


SAMPLE_UNITS = 5_000


def _measurement_sample(table: pa.Table, original: np.ndarray, shifted: np.ndarray):
    """Units of one storey and the segments, so that topology is judged between neighbours,
    not between the same footprint stacked on every floor."""
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    floors = table.column("floor").to_numpy(zero_copy_only=False) if "floor" in table.column_names else None
    ground = (kinds == "room") & (floors == 1) if floors is not None else kinds == "room"
    flat = np.isin(kinds, ["road", "pipe", "cable", "parcel"]) | ground
    picked = np.flatnonzero(flat)
    # Units located by grid cell share their class's box: measure each box once.
    wkb = table.column("geometry").take(pa.array(picked)).to_numpy(zero_copy_only=False)
    picked = picked[np.sort(np.unique(wkb, return_index=True)[1])][:SAMPLE_UNITS]
    return original[picked], shifted[picked]


def _shift_report(mode, sample) -> dict[str, Any]:
    if mode is None:
        return {"mode": "none", "warning": "not shifted: compute-only data that never leaves the platform"}
    report = {"mode": mode.describe()}
    if sample is not None:
        original, shifted = sample
        report["measured"] = shifting.measure_shift(original, shifted, mode).to_dict()
    report["note"] = ("no shift replaces declassification: an attacker who knows true landmark positions "
                      "near a unit can undo much of a shift; see attack_residual_m")
    return report
