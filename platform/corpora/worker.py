"""The ingest task's work, on a worker: a corpus version with visible progress."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext_noop

from catalog.models import Dataset
from progress.actions import run_tracked
from progress.models import TaskProgress

from . import store
from .actions import corpus_dir, record_corpus_version
from .schema import STORAGE_CRS


def ingest(task_id: str, dataset_id: int, source: dict) -> None:
    """Read an upload (or generate a district), store it as a corpus version and record it,
    with visible progress: the task `corpora.ingest`."""
    task = TaskProgress.objects.select_related("started_by").get(pk=task_id)
    dataset = Dataset.objects.get(pk=dataset_id)
    target = corpus_dir() / dataset.slug / f"task-{task_id}.parquet"

    def work(report) -> dict:
        if "generator" in source:
            from .generator import generate_district

            spec = source["generator"]
            rooms = spec["rooms"]

            def batches():
                done = 0
                for batch in generate_district(seed=spec["seed"], rooms=rooms):
                    done += int((batch.column("kind").to_numpy(zero_copy_only=False) == "room").sum())
                    report(95 * done / rooms, gettext_noop("generated %(done)s of %(rooms)s rooms"),
                           done=f"{done:,}", rooms=f"{rooms:,}")
                    yield batch

            summary = store.write_corpus(batches(), target)
            origin, crs = f"generator:seed={spec['seed']},rooms={rooms}", STORAGE_CRS
        else:
            from .ingest import read_units

            report(5, gettext_noop("reading and validating the upload"))
            result = read_units(
                source["upload"], declared_crs=source.get("declared_crs"), extent=settings.MILIAO_EXTENT
            )
            report(60, gettext_noop("validated %(rows)s units; indexing on the 3D grid"), rows=f"{result.rows:,}")
            summary = store.write_corpus([result.table], target)
            Path(source["upload"]).unlink(missing_ok=True)
            origin, crs = source["name"], result.source_crs
        return {"file": str(target), "source": origin, "source_crs": crs, "units": summary.units,
                "kinds": summary.kinds, "extent": summary.extent, "sha256": summary.sha256,
                "cells": sorted(summary.cells)}

    def commit(result: dict) -> None:
        summary = store.CorpusSummary(units=result["units"], kinds=result["kinds"], extent=result["extent"],
                                      sha256=result["sha256"], cells=set(result.pop("cells")))
        corpus = record_corpus_version(actor=task.started_by, dataset=dataset, file=Path(result["file"]),
                                       source=result["source"], source_crs=result["source_crs"], summary=summary)
        result["corpus_version"] = corpus.pk
        result["version"] = corpus.version

    run_tracked(task_id, work, commit=commit)
