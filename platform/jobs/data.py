"""What a job may read, written once into its own folder, read-only: the built-in task's
arrays for a centralized job, one folder per district for a federated job's nodes, and
for code-to-data the private rows (no direct identifiers) beside their synthetic mock."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from sandbox import tasks
from sandbox.training import TrainSpec

from .models import Job


def corpus_table(job: Job, columns: list[str] | None = None) -> pa.Table:
    return corpus_table_of(job.corpus, columns)


def corpus_table_of(corpus, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(Path(settings.STATE_DIR) / corpus.path, columns=columns)


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
    """train.npz/test.npz and job.json for a centralized job; for a federated one, each
    district's raw rows (`folder/<n>/`, what its holder keeps). Returns what was written: rows,
    districts, the vocabulary, the trivial baseline."""
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
               "features": int(train.x.shape[1]), "neighbourhoods": vocabulary}
    if job.base_result_id:  # a shared result's weights, to start from
        shutil.copyfile(Path(settings.STATE_DIR) / job.base_result.submission.path, folder / BASE_WEIGHTS)
        summary["base_weights"] = str(folder / BASE_WEIGHTS)
    if job.kind == "centralized":
        train.save(folder / "train.npz")
        test.save(folder / "test.npz")
        (folder / "job.json").write_text(json.dumps(description))
    else:
        summary["partitions"] = tasks.write_partitions(table, folder)
    seal(folder)
    return summary



# --- code-to-data: the PySyft dataset's two parts ----------------------------------------

MOCK_ROWS = 500
BASE_WEIGHTS = "base.pt"


def direct_identifiers() -> tuple[str, ...]:
    """Columns a job's code never sees: the direct identifiers every release drops, and free
    text (a release also drops building_id, but only because it would locate a room finer than
    its grid cell; jobs keep it as the join key it is)."""
    from releases.desensitize import LOCATING_KEYS, UNIT_POLICY

    return (*(c for c in UNIT_POLICY.drop if c not in LOCATING_KEYS), *UNIT_POLICY.free_text)


def code_tables(corpus) -> tuple[pa.Table, pa.Table]:
    """(mock, private) of a corpus version for code-to-data: the private rows without direct
    identifiers, and synthetic rows of the same columns (corpora.mock: never a real row)."""
    from corpora.mock import mock_seed, mock_units

    path = Path(settings.STATE_DIR) / corpus.path
    names = [n for n in pq.read_schema(path).names if n not in direct_identifiers()]
    private = pq.read_table(path, columns=names)
    kinds = sorted(set(private["kind"].unique().to_pylist()))
    mock = mock_units(seed=mock_seed(corpus.dataset.slug), rows=MOCK_ROWS, kinds=kinds)
    columns = [mock[n].cast(private.schema.field(n).type) if n in mock.column_names
               else pa.nulls(mock.num_rows, private.schema.field(n).type) for n in names]
    return pa.Table.from_arrays(columns, schema=private.schema), private


def syft_root() -> Path:
    return Path(settings.STATE_DIR) / "syft"


def jobs_box() -> Path:
    """The bureaus' PySyft jobs datasites: submissions, review states and held outputs."""
    return syft_root() / "jobs"


def datasite_email(organisation) -> str:
    return f"{organisation.code}@{settings.SYFT_DATASITE_DOMAIN}"


def submitter_email(user) -> str:
    return f"{user.username}@{user.organisation.code}.{settings.SYFT_DATASITE_DOMAIN}"


def published(syft_dataset):
    """A SyftDataset row as sandbox.code_to_data's PublishedDataset."""
    from sandbox.code_to_data import PublishedDataset

    return PublishedDataset(box=Path(settings.STATE_DIR) / syft_dataset.path, owner=syft_dataset.owner,
                            name=syft_dataset.name, mock_sha256=syft_dataset.mock_sha256,
                            private_sha256=syft_dataset.private_sha256, mock_rows=syft_dataset.mock_rows,
                            private_rows=syft_dataset.private_rows)


def zip_folder(folder: Path) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, str(path.relative_to(folder)))
    return buffer.getvalue()


def mock_guide(syft_dataset) -> str:
    """MILIAO.md in the mock zip: how to develop a job against the mock and submit it."""
    from sandbox.dp_aggregates import CONTRIBUTION_FILES

    from .models import SandboxPolicy

    policy = SandboxPolicy.of(syft_dataset.dataset)
    if policy.code_outputs == "dp":
        outputs = (
            f"This dataset's outputs are **DP aggregates**. Write `outputs/{CONTRIBUTION_FILES[0]}`: one row per "
            "record you use, with its `unit_id`, the group columns and the value columns you declare in the job's "
            "`params.aggregate` (`{\"by\": [...], \"values\": {\"column\": [lo, hi]}}`). A record's row must depend "
            "on that record alone. The platform clips the values to the bounds, adds OpenDP noise and releases "
            "per-group counts, sums and means; groups with few records are not released.")
    else:
        outputs = (
            f"This dataset's outputs are **reviewed files** (.csv, .json, .txt, .md; at most {policy.max_output_bytes} "
            f"bytes) in `outputs/`. No private identifier or row may appear in them, and no count below "
            f"{policy.min_cell_count}; a steward reads them before they are released to you.")
    return f"""# {syft_dataset.name} v{syft_dataset.corpus.version}: mock data for code-to-data

The rows here are synthetic (mock). Your job runs on the private rows, which have the same columns.

Develop against the mock:

```sh
unzip {syft_dataset.name}-v{syft_dataset.corpus.version}-mock.zip -d mock
export SYFTBOX_FOLDER=$PWD/mock SYFTBOX_EMAIL={syft_dataset.owner}
python job.py
```

where `job.py` reads the data the PySyft way, so that it runs unchanged on the private rows:

```python
import syft as sy, pyarrow.parquet as pq
units = pq.read_table(sy.resolve_dataset_file_path("{syft_dataset.name}"))
```

{outputs}

Then submit it: `POST /api/jobs/` with `kind: "code"`, `dataset: "{syft_dataset.dataset.slug}"`, `code` and
`params` (`target_epsilon`, `delta`) and, if the defaults do not suit, `limits`. A steward reads the code before it
runs. The job has no network and no sockets, reads only this dataset, and stops at its CPU, memory, time and disk
limits, which the dataset's owner caps (`GET /api/sandbox-policies/{syft_dataset.dataset.slug}/`).
"""
