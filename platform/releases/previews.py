"""Previews: the pipeline run on the first units of a corpus version, in a scratch folder,
and a map of the result. Nothing is stored and no key is kept."""
from __future__ import annotations

import dataclasses
import secrets
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from django.conf import settings

from corpora.models import CorpusVersion

from miliao.errors import InvalidInput

from .location import PolicyUnmet, with_location
from .pipeline import NothingToRelease, ReleaseSpec, run_release
from .preview import svg_map
from .writers import BBOX_COLUMN


def preview(corpus: CorpusVersion, spec: ReleaseSpec, *, units: int = 2000) -> tuple[dict, str]:
    """The report of a trial release of the first `units` units, and an SVG map of it."""
    with tempfile.TemporaryDirectory(prefix="miliao-preview-") as scratch:
        out = Path(scratch) / "release"
        trial = dataclasses.replace(spec, outputs=("geoparquet",))
        try:
            trial.check_releasable()
        except ValueError as exc:
            raise InvalidInput("spec", str(exc)) from exc
        try:
            report = run_release(Path(settings.STATE_DIR) / corpus.path, trial, secrets.token_bytes(32), out,
                                 basename="preview", limit=units)
        except NothingToRelease as exc:
            raise InvalidInput("units", str(exc)) from exc
        except PolicyUnmet as exc:
            raise InvalidInput("desensitize", str(exc)) from exc
        return report, release_map(out / report["outputs"]["geoparquet"]["path"], title=f"{corpus} preview")


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
                report = run_release(Path(settings.STATE_DIR) / corpus.path, dataclasses.replace(trial, outputs=(
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


def release_map(path: Path, *, title: str, max_features: int = 1500, max_row_groups: int = 32) -> str:
    """A map of a release file, from a few row groups spread over it (the whole district,
    without reading a million geometries for one page). Row groups are patches along a
    Hilbert curve (releases.writers), so the groups spread along the file spread over the map."""
    if not path.exists():
        return ""
    parquet = pq.ParquetFile(path)
    groups = sorted({int(g) for g in np.linspace(0, parquet.num_row_groups - 1, max_row_groups)})
    table = parquet.read_row_groups(groups, columns=["kind", "geometry"])
    if table.num_rows == 0:
        return ""
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return svg_map(geoms, table.column("kind").to_numpy(zero_copy_only=False), title=title, max_features=max_features)
