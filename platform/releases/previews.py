"""Previews: the pipeline run on the first units of a corpus version, in a scratch folder,
and a map of the result (GeoJSON, releases.mapdata). Nothing is stored and no key is kept."""
from __future__ import annotations

import dataclasses
import secrets
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from corpora.models import CorpusVersion
from kernel.errors import InvalidInput
from kernel.paths import state_path

from . import mapdata
from .location import PolicyUnmet, with_location
from .pipeline import NothingToRelease, ReleaseSpec, run_release
from .writers import BBOX_COLUMN

PREVIEW_MAP_FEATURES = 1000


def preview(corpus: CorpusVersion, spec: ReleaseSpec, *, units: int = 2000) -> tuple[dict, dict]:
    """The report of a trial release of the first `units` units, and a map of it (a GeoJSON
    FeatureCollection of at most PREVIEW_MAP_FEATURES of its features, with their attributes)."""
    with tempfile.TemporaryDirectory(prefix="miliao-preview-") as scratch:
        out = Path(scratch) / "release"
        trial = dataclasses.replace(spec, outputs=("geoparquet",))
        try:
            trial.check_releasable()
        except ValueError as exc:
            raise InvalidInput("spec", str(exc)) from exc
        try:
            report = run_release(state_path(corpus.path), trial, secrets.token_bytes(32), out,
                                 basename="preview", limit=units)
        except NothingToRelease as exc:
            raise InvalidInput("units", str(exc)) from exc
        except PolicyUnmet as exc:
            raise InvalidInput("desensitize", str(exc)) from exc
        return report, mapdata.release_features(out / report["outputs"]["geoparquet"]["path"],
                                                max_features=PREVIEW_MAP_FEATURES)


LOCATION_CHOICES = (("cell", "room"), ("aggregate", "floor"), ("aggregate", "building"))


def location_choices(corpus: CorpusVersion, spec: ReleaseSpec, *, units: int = 2000) -> list[dict]:
    """What each way of locating units keeps, on the same first units under the same policy
    otherwise: per choice the units and columns released, the geometry, the k reached, and
    the measured re-identification; or why the policy refuses it."""
    choices = []
    for shape, level in LOCATION_CHOICES:
        choice = {"location": shape, "level_of_detail": level}
        try:
            trial = with_location(spec, shape, level)
            with tempfile.TemporaryDirectory(prefix="miliao-choice-") as scratch:
                out = Path(scratch) / "release"
                report = run_release(state_path(corpus.path), dataclasses.replace(trial, outputs=(
                    "geoparquet",)), secrets.token_bytes(32), out, basename="choice", limit=units)
                columns = pq.ParquetFile(out / report["outputs"]["geoparquet"]["path"]).schema_arrow.names
        except (ValueError, NothingToRelease) as exc:
            choices.append({**choice, "refused": str(exc)})
            continue
        attack = report["attacks"]["reidentification"]
        choices.append({
            **choice,
            "units_in": report["units_in"],
            "units_out": report["units_out"],
            "sensitive": [c for c in trial.desensitize.sensitive if c in columns],
            "columns": [c for c in columns if c not in ("geometry", BBOX_COLUMN, "unit_id", "kind")],
            "k_reached": report["desensitized"]["k_anonymity"]["k_reached"],
            "reidentified": attack["share"],
            "targets": attack["targets"],
        })
    return choices


def release_sample(path: Path, *, rows: int = 8) -> pa.Table | None:
    """The first rows of a release file, as it was published (a dataset page's sample)."""
    if not path.exists():
        return None
    parquet = pq.ParquetFile(path)
    # Not the bbox covering column: a page shows a geometry's type, never its coordinates.
    columns = [name for name in parquet.schema_arrow.names if name != BBOX_COLUMN]
    first = next(parquet.iter_batches(batch_size=rows, columns=columns), None)
    return None if first is None else pa.Table.from_batches([first])
