"""What a job may read, written once into its own folder, read-only: the built-in task's
arrays for a centralized job, one folder per district for a federated job's nodes, and
for code-to-data the private rows (no direct identifiers) beside their synthetic mock."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from sandbox import tasks
from sandbox.training import TrainSpec

from .models import Job


def corpus_table(job: Job, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(Path(settings.STATE_DIR) / job.corpus.path, columns=columns)


def seal(folder: Path) -> None:
    """Read-only for everyone, the folder and what is in it."""
    for path in sorted(folder.rglob("*"), reverse=True):
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                                                                        if path.is_dir() else 0))
    os.chmod(folder, 0o555)


def unseal(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def training_data(job: Job, folder: Path) -> dict:
    """train.npz/test.npz and job.json for a centralized job; per district for federated
    ones (`folder/<n>/`). Returns what was written: rows, districts, the trivial baseline."""
    task = tasks.task_named(job.task)
    table = corpus_table(job, tasks.COLUMNS)
    vocabulary = tasks.vocabulary(table)
    train, test = tasks.split(table, task, vocabulary, salt=job.corpus.sha256)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"corpus version {job.corpus.version} has no rooms with {task.target} to train on")
    spec = {k: v for k, v in job.params.items() if k in TrainSpec.__dataclass_fields__}
    description = {"task": job.task, "train": spec, "neighbourhoods": vocabulary, "features": train.x.shape[1]}
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"train_rows": len(train), "test_rows": len(test), "baseline": tasks.baseline(task, train, test),
               "features": int(train.x.shape[1])}
    if job.kind == "centralized":
        train.save(folder / "train.npz")
        test.save(folder / "test.npz")
        (folder / "job.json").write_text(json.dumps(description))
    else:
        districts = sorted(set(train.district.tolist()))
        summary["partitions"] = []
        for n, district in enumerate(districts):
            part = folder / str(n)
            part.mkdir()
            train.take(train.district == district).save(part / "train.npz")
            test.take(test.district == district).save(part / "test.npz")
            (part / "job.json").write_text(json.dumps(description))
            summary["partitions"].append({"node": n, "district": district,
                                          "train_rows": int((train.district == district).sum()),
                                          "test_rows": int((test.district == district).sum())})
        test.save(folder / "test.npz")  # the platform's held-out copy, for the card's evaluation
    seal(folder)
    return summary

