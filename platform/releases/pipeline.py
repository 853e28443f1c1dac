"""The release pipeline: desensitize, declassify, shift, lightweight, write, report.

Deterministic given (corpus file, spec, release key). It streams the corpus in batches, so
memory does not grow with the corpus, in three passes over the columns each needs:

0. the units of removed categories, so that their protective zones are known everywhere
   (a zone near a batch boundary must also mask units in the next batch);
1. declassification and the generalized quasi-identifiers of every unit that survives it, with
   its location and height band where the policy locates units by grid cell, so that
   k-anonymity and l-diversity suppression sees whole equivalence classes (releases.location);
   and the names, phones and ID numbers of the dropped columns of every unit, the gazetteer
   that pass 2 scrubs from free text (pii.Gazetteer);
2. the release itself: keep what passes 1 kept, desensitize, put each unit at its class's
   location, coarsen heights, shift, lightweight, and write GeoParquet batch by batch.

The report ends with the attacks measured on the release's own data: re-identification of
sampled targets by building, floor and quasi-identifiers (releases.linkage), and re-location
by a basemap and by landmarks (releases.relocation).

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
import threading
import uuid
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

from corpora.store import COVER_LEVEL, file_sha256, iter_corpus

from . import jsonable, linkage, location, relocation
from . import shift as shifting
from . import topology
from .columns import with_released_area
from .declassify import DeclassifyPolicy, declassify, grown, zone_geometries
from .desensitize import UNIT_POLICY, DesensitizePolicy, pseudonymize, transform
from .columns import grid_step_deg
from .lightweight import LightweightPolicy, lightweight
from .pii import PLACE_COLUMNS, Gazetteer, Scrubber, gazetteer_part, warm_up
from .writers import GeoParquetStreamWriter, coordinate_label, write_geojson, write_geopackage

ROW = "_row"  # the corpus row number, carried through pass 1 and 2 to apply suppression
OUTPUT_FORMATS = ("geoparquet", "geopackage", "geojson")
UNSHIFTED = "none"  # compute-only data only: it never leaves the platform
SHIFT_MODES = ("smooth", "cell", "gcj02", UNSHIFTED)
DATA_CLASSES = ("open", "conditional", "compute_only")
_PIPELINE_SOURCES = ("pipeline.py", "desensitize.py", "location.py", "linkage.py", "pii.py", "declassify.py",
                     "shift.py", "lightweight.py", "writers.py", "relocation.py", "columns.py",
                     "topology.py", "jsonable.py")

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
        if mode == UNSHIFTED and self.data_class != "compute_only":
            raise ValueError("shift.mode: a release that leaves the platform must be shifted; 'none' is "
                             "only for compute-only data")
        unknown = sorted(set(self.outputs) - set(OUTPUT_FORMATS))
        if not self.outputs or unknown:
            raise ValueError(f"outputs: choose from {list(OUTPUT_FORMATS)}" + (f", not {unknown}" if unknown else ""))
        build_shift(self.shift, b"\0" * 32)  # refuse bad shift parameters now, not mid-release
        _check_location(self.desensitize, self.lightweight)

    def check_releasable(self) -> None:
        """Refuse a spec whose files would hold unshifted coordinates: 'none' only describes
        how compute-only rows reach the sandbox, which reads the corpus itself."""
        if self.shift.get("mode") == UNSHIFTED:
            raise ValueError(
                "shift.mode: 'none' is only a sandbox input: compute-only rows are read unshifted by "
                "sandbox jobs and never become a release file; a release is always shifted "
                "(smooth, cell or gcj02)"
            )

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
    """The policy's shift (shift.ShiftMode.for_policy), its errors prefixed with `shift:`."""
    try:
        return shifting.ShiftMode.for_policy(params, key)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shift: {exc}") from exc


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
    spec.check_releasable()
    report_progress = progress or (lambda percent, stage: None)
    started = time.perf_counter()
    total = pq.ParquetFile(corpus_path).metadata.num_rows
    total = min(total, limit) if limit is not None else total
    pseudonym_key = subkey(release_key, "pseudonyms")
    shift_mode = build_shift(spec.shift, subkey(release_key, "shift"))

    scrubbing = bool(spec.desensitize.free_text)
    if scrubbing:
        warm_up()  # the name tagger loads beside passes 0 and 1
    report_progress(1, "finding sensitive zones")
    zones = _global_zones(corpus_path, spec.declassify, limit)
    # Removed units' zones are all in `zones` already; batches need not grow them again.
    per_batch = dataclasses.replace(spec.declassify, zone_buffer_m=0.0)

    # Pass 1: who survives declassification, and what their equivalence classes are made of; and
    # the gazetteer of the direct identifiers, over every unit, to scrub from free text in pass 2.
    policy, light = spec.desensitize, spec.lightweight
    schema = pq.ParquetFile(corpus_path).schema_arrow
    policy.check_columns(schema)  # a column the corpus lacks is named now, before any pass
    names = schema.names
    identifiers = [c for c in policy.drop if c in names] if scrubbing else []
    places = [c for c in PLACE_COLUMNS if c in names] if scrubbing else []
    needed = ["unit_id", "sensitive_category", *location.needed_columns(policy, names, light.level_of_detail),
              *identifiers, *places]
    needed = list(dict.fromkeys(needed))

    def pass_one(start: int, table: pa.Table):
        names_part = gazetteer_part(table, identifiers)
        rooms = np.flatnonzero(pc.equal(table.column("kind"), "room").to_numpy(zero_copy_only=False)) + start
        released, dreport = declassify(_with_rows(table, start), per_batch, zones=zones)
        released = with_released_area(released, shift_mode)  # as pass 2 releases it
        columns = location.class_columns(released, policy, light.level_of_detail, light.grid_level)
        columns[ROW] = released.column(ROW)
        return start + table.num_rows, pa.table(columns), dreport, rooms, names_part

    survivors, declass_reports, rooms, known_parts = [], [], [], []
    for done, survivor, dreport, room_rows, names_part in _in_order(
            pass_one, iter_corpus(corpus_path, columns=needed, limit=limit)):
        survivors.append(survivor)
        declass_reports.append(dreport)
        rooms.append(room_rows)
        known_parts.append(names_part)
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
    gazetteer = Gazetteer.combine(known_parts)
    scrubber = Scrubber(gazetteer)

    # Pass 2: the release itself.
    # A folder of this build's own: a second delivery of the same build (Celery delivers at least
    # once) writes beside it rather than into it, and the last to finish puts the same files in place.
    staging = out_dir.with_name(f"{out_dir.name}.partial-{uuid.uuid4().hex[:12]}")
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
    measuring = attacking = contact_pairs = contact_sample = None
    probing = threading.Event()  # batches hand over their truth for the attacks until one is taken
    probing.set()
    coverage: set[str] = set()
    first_rows = 0
    # Every file says what its coordinates are: GCJ-02, or CGCS2000 shifted by which mode.
    label = coordinate_label(shift_mode.describe()) if shift_mode is not None else None
    writer = GeoParquetStreamWriter(parquet_path, label=label)
    try:
        def pass_two(start: int, table: pa.Table):
            known = (linkage.pick_targets(start, table, targets, target_columns, shift_mode),
                     linkage.pick_buildings(table))
            rows = np.flatnonzero(keep[start:start + table.num_rows]) + start
            table = table.take(pa.array(rows - start))
            if table.num_rows == 0:
                return start, None, None, None, None, None, None, known, None
            table = with_released_area(table, shift_mode)  # before noding: as pass 1 computed it
            # Units that touch keep touching: shared boundaries get the same vertices on both
            # sides now, before the shift, and lightweight keeps the vertices they share.
            groups = topology.coverage_groups(table)
            contacts = None
            if start == 0:
                # Rooms located by grid cell are released as their class's box: no wall of
                # theirs is kept, so their contacts are not counted (the report says so).
                located = classes.row_class[rows] >= 0 if classes.row_class is not None else None
                contacts = topology.contact_sample(table, groups if located is None else np.where(located, -1, groups))
                contacts = contacts if len(contacts["ids"]) else None
            noded, _ = topology.node(table.column("geometry"), groups)
            table = table.set_column(table.schema.get_field_index("geometry"), "geometry", noded)
            table = table.append_column(topology.COVERAGE, pa.array(groups))
            table, dreport = transform(table, spec.desensitize, pseudonym_key, scrubber=scrubber)
            true_geometry = table.column("geometry")  # what the attacks measure against
            table = classes.relocate(rows, table)
            table, _ = declassify(table, z_only)
            sample = None
            if shift_mode is not None:
                table, sample = _shifted(table, shift_mode, measure=start == 0)
            probe = (table, true_geometry) if probing.is_set() else None
            table, lreport = lightweight(table, spec.lightweight)
            table, withheld = location.withhold_small_aggregates(table, policy, light.level_of_detail)
            lreport["withheld_aggregates"] = withheld
            return start, table, dreport, lreport, sample, contacts, probe, known, linkage.compress(table, policy)

        for start, table, dreport, lreport, sample, contacts, probe, known, seen in _in_order(
            pass_two, iter_corpus(corpus_path, limit=limit)
        ):
            attack_targets.append(known[0])
            attack_buildings.append(known[1])
            if table is None:
                continue
            attack_rows.append(seen)
            totals["withheld_aggregates"] += lreport["withheld_aggregates"]
            desens_report = dreport
            if contacts is not None and contact_pairs is None:
                contact_sample = contacts
                contact_pairs = measurer.submit(topology.contact_pairs, contacts)
            if sample is not None and measuring is None:
                # Measured beside the rest of pass 2; mostly numpy and scipy, off the GIL.
                measuring = measurer.submit(_shift_report, shift_mode, sample)
            if attacking is None and probe is not None and table.num_rows:
                # The attacks on the first batch that released anything, beside pass 2 too.
                attacking = measurer.submit(relocation.attack_report, corpus_path, shift_mode, spec.lightweight,
                                            *probe, table)
                probing.clear()
            for category, n in dreport["pii_redacted"]["counts"].items():
                totals["pii"][category] = totals["pii"].get(category, 0) + n
            totals["vertices_before"] += lreport["vertices"]["before"]
            totals["vertices_after"] += lreport["vertices"]["after"]
            totals["wkb_before"] += lreport["wkb_bytes"]["before"]
            totals["wkb_after"] += lreport["wkb_bytes"]["after"]
            totals["features_out"] += table.num_rows
            totals["invalid"] += lreport["topology"]["invalid"]
            totals["collapsed"] += lreport["features"].get("collapsed", 0)
            first_rows = first_rows or table.num_rows  # the first batch: where the contact sample lies
            if "grid_code" in table.column_names:  # where the release lies, to a catalogue cell
                prefixes = pc.utf8_slice_codeunits(table.column("grid_code"), 0, COVER_LEVEL + 1)
                coverage.update(pc.unique(prefixes.combine_chunks()).drop_null().to_pylist())
            writer.write(table)
            report_progress(30 + 60 * (start + table.num_rows) / max(total, 1), "desensitizing, shifting, lightening")
        if totals["features_out"] == 0:
            raise NothingToRelease(
                f"nothing is left to release: of {total} units, declassification withheld "
                f"{sum(r['units_in'] - r['units_out'] for r in declass_reports)} and k-anonymity suppressed "
                f"{kanon['suppressed']}; relax the policy, generalize more, or use more units"
            )
        writer.close()
        topology_report = _topology_report(parquet_path, first_rows, contact_sample, contact_pairs, spec,
                                           pseudonym_key)
        if classes.row_class is not None:
            topology_report["not_measured"] = ("units located by grid cell (desensitize.location 'cell'): each is "
                                               "released as its class's box, which keeps no wall of its own")
        outputs = {"geoparquet": {"path": parquet_path.name, "bytes": parquet_path.stat().st_size,
                                  "sha256": file_sha256(parquet_path)}}
        if {"geopackage", "geojson"} & set(spec.outputs):
            report_progress(92, "writing GeoPackage and GeoJSON")
            released = pq.read_table(parquet_path)
            if "geopackage" in spec.outputs:
                path = staging / f"{basename}.gpkg"
                write_geopackage(released, path, label=label)
                outputs["geopackage"] = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            if "geojson" in spec.outputs:
                path = staging / f"{basename}.geojson"
                write_geojson(released, path, label=label)
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
            "gazetteer": {"columns": identifiers, "place_columns": places, **gazetteer.summary()},
            "generalized": spec.desensitize.to_dict()["generalize"],
            "k_anonymity": kanon,
            "location": classes.location,
        },
        "shift": measuring.result() if measuring is not None else _shift_report(shift_mode, None),
        "attacks": attacking.result() if attacking is not None else {},
        "lightweight": {
            "level_of_detail": spec.lightweight.level_of_detail,
            "vertices": {"before": totals["vertices_before"], "after": totals["vertices_after"]},
            "wkb_bytes": {"before": totals["wkb_before"], "after": totals["wkb_after"]},
            "collapsed": totals["collapsed"],
            "invalid_geometries": totals["invalid"],
            "topology": topology_report,
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
        "coordinates": label["note"] if label else {"crs": "CGCS2000 (EPSG:4490)", "shifted": False},
        # What a viewer who may not download the release is shown of it (the portal's maps).
        "coverage": {"level": COVER_LEVEL, "cells": sorted(coverage)},
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
    (staging / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=jsonable.strict))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    report_progress(100, "done")
    return json.loads(json.dumps(report, default=jsonable.strict))


def _central_latitude(units: pa.Table) -> float | None:
    """The latitude of the units' representative points (location "cell"), for cell sizes in metres."""
    if location.LAT not in units.column_names or units.num_rows == 0:
        return None
    return float(pc.mean(units.column(location.LAT)).as_py())


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


def _shifted(table: pa.Table, mode: shifting.ShiftMode, *, measure: bool):
    """The table with its geometry shifted, and (when measure) the sample the shift report
    measures. Stacked rooms share one footprint, so each distinct one is shifted once."""
    encoded = pc.dictionary_encode(table.column("geometry").combine_chunks())
    distinct = shapely.from_wkb(encoded.dictionary.to_numpy(zero_copy_only=False))
    moved = shifting.shift_geometries(distinct, mode)
    rows = encoded.indices
    shifted = pa.array(shapely.to_wkb(moved), pa.binary()).take(rows)
    sample = None
    if measure:
        index = rows.to_numpy(zero_copy_only=False)
        sample = _measurement_sample(table, distinct[index], moved[index])
    return table.set_column(table.schema.get_field_index("geometry"), "geometry", shifted), sample


def _topology_report(path: Path, first_rows: int, sample, pairs, spec: ReleaseSpec, key: bytes) -> dict[str, Any]:
    """Contacts of the first batch's coverages, measured on the written file (its first row
    groups, where the first batch went)."""
    if sample is None:
        return {"measured_on": "nothing: the first batch released no unit at a geometry of its own", "contacts": 0,
                "broken": 0}
    ids = pa.array(sample["ids"], pa.string())
    released_ids = (pseudonymize(ids, key) if "unit_id" in spec.desensitize.pseudonymize else ids)
    released_ids = released_ids.to_numpy(zero_copy_only=False).astype(str)
    parquet = pq.ParquetFile(path)
    sizes = np.cumsum([parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
    groups = range(int(np.searchsorted(sizes, first_rows)) + 1)
    written = parquet.read_row_groups(list(groups)[: parquet.num_row_groups], columns=["unit_id", "geometry"])
    written = written.filter(pc.is_in(written.column("unit_id"), pa.array(released_ids)))
    return topology.measure_contacts(sample, pairs.result(), released_ids, written)


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
        return {"mode": UNSHIFTED, "warning": "not shifted: compute-only data that never leaves the platform"}
    report = {"mode": mode.describe()}
    if sample is not None:
        original, shifted = sample
        # Landmark residuals are measured on the release's own layout (report["attacks"]["landmarks"]),
        # contacts on the written file (lightweight.topology), after rounding and simplification.
        measured = shifting.measure_shift(original, shifted, mode, landmarks=False, contacts=False).to_dict()
        for name in ("attack_residual_m", "touching_pairs", "broken_adjacency", "new_intersections"):
            measured.pop(name)
        report["measured"] = measured
    report["note"] = ("no shift replaces declassification: no shape-preserving shift withstands a basemap. Anyone "
                      "with public building footprints matches the released shapes to them and puts units back "
                      "(attacks.relocation), and a few true landmarks undo much of it too (attacks.landmarks); "
                      "the protection comes from generalization and declassification")
    return report
