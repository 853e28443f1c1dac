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

from .pipeline import NothingToRelease, ReleaseSpec, run_release
from .preview import svg_map


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
        return report, release_map(out / report["outputs"]["geoparquet"]["path"], title=f"{corpus} preview")


def release_sample(path: Path, *, rows: int = 8) -> pa.Table | None:
    """The first rows of a release file, as it was published (a dataset page's sample)."""
    if not path.exists():
        return None
    first = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
    return None if first is None else pa.Table.from_batches([first])


def release_map(path: Path, *, title: str, max_features: int = 1500, max_row_groups: int = 4) -> str:
    """A map of a release file, from a few row groups spread over it (the whole district,
    without reading a million geometries for one page)."""
    if not path.exists():
        return ""
    parquet = pq.ParquetFile(path)
    groups = sorted({int(g) for g in np.linspace(0, parquet.num_row_groups - 1, max_row_groups)})
    table = parquet.read_row_groups(groups, columns=["kind", "geometry"])
    if table.num_rows == 0:
        return ""
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return svg_map(geoms, table.column("kind").to_numpy(zero_copy_only=False), title=title, max_features=max_features)
