"""Previews: the pipeline run on the first units of a corpus version, in a scratch folder,
and a map of the result. Nothing is stored and no key is kept."""
from __future__ import annotations

import dataclasses
import secrets
import tempfile
from pathlib import Path

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
            report = run_release(Path(settings.STATE_DIR) / corpus.path, trial, secrets.token_bytes(32), out,
                                 basename="preview", limit=units)
        except NothingToRelease as exc:
            raise InvalidInput("units", str(exc)) from exc
        return report, release_map(out / report["outputs"]["geoparquet"]["path"], title=f"{corpus} preview")


def release_map(path: Path, *, title: str, max_features: int = 1500) -> str:
    table = pq.ParquetFile(path).read_row_group(0, columns=["kind", "geometry"]) if path.exists() else None
    if table is None or table.num_rows == 0:
        return ""
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return svg_map(geoms, table.column("kind").to_numpy(zero_copy_only=False), title=title, max_features=max_features)
