"""What a job may read, written once into its own folder, read-only: the built-in task's
arrays for a centralized job, one folder per district for a federated job's nodes, and
for code-to-data the private rows (no direct identifiers) beside their synthetic mock."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from kernel.paths import state_path
from sandbox import tasks
from sandbox.training import TrainSpec

from .models import Job


def corpus_table(job: Job, columns: list[str] | None = None) -> pa.Table:
    return corpus_table_of(job.corpus, columns)


def corpus_table_of(corpus, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(state_path(corpus.path), columns=columns)


def seal(folder: Path) -> None:
    """Read-only for everyone, the folder and what is in it."""
    for path in sorted(folder.rglob("*"), reverse=True):
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                                                                        if path.is_dir() else 0))
    os.chmod(folder, 0o555)


def unseal(folder: Path) -> None:
    """Writable again, to be removed. A job's own folders hold what it made, links included:
    walked without following links, and a link is never chmod-ed (that would change its target)."""
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                os.chmod(path, 0o755 if stat.S_ISDIR(mode) else 0o644)
    if folder.is_dir() and not folder.is_symlink():
        os.chmod(folder, 0o755)


def output_caps(dataset=None):
    """What one job may bring out of its folder: total bytes and files (sandbox.outputs.Caps).
    The platform's settings; `dataset` is there for a dataset's own sandbox policy to lower
    them. (A challenge submission's are innovation.scoring.outputs_caps.)"""
    from sandbox.outputs import Caps

    return Caps(max_bytes=settings.MILIAO_JOB_OUTPUT_MAX_BYTES, max_files=settings.MILIAO_JOB_OUTPUT_MAX_FILES)


def training_data(job: Job, folder: Path) -> dict:
    """train.npz/test.npz and job.json for a centralized job; for a federated one, each
    district's raw rows (`folder/<n>/`, what its holder keeps). Returns what was written: rows,
    districts, the vocabulary, the trivial baseline."""
    if job.kind == "federated":
        return federated_data(job, folder)
    task = tasks.task_named(job.task)
    table = corpus_table(job, tasks.COLUMNS)
    vocabulary = tasks.vocabulary(table)
    train, test = tasks.split(table, task, vocabulary, salt=job.corpus.sha256)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"corpus version {job.corpus.version} has no rooms with {task.target} to train on")
    spec = {k: v for k, v in job.params.items() if k in TrainSpec.__dataclass_fields__}
    # Each run draws its own secret seed: DP-SGD's noise (and its batches) from a seed the
    # submitter knows, such as the stored default 0, could be replayed by anyone holding the
    # rest of the data, and two runs on neighbouring data would share the same noise.
    spec["seed"] = secrets.randbits(31)
    description = {"task": job.task, "train": spec, "neighbourhoods": vocabulary, "features": train.x.shape[1]}
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"train_rows": len(train), "test_rows": len(test), "baseline": tasks.baseline(task, train, test),
               "features": int(train.x.shape[1]), "neighbourhoods": vocabulary}
    if job.base_result_id:  # a shared result's weights, to start from
        shutil.copyfile(state_path(job.base_result.submission.path), folder / BASE_WEIGHTS)
        summary["base_weights"] = str(folder / BASE_WEIGHTS)
    train.save(folder / "train.npz")
    test.save(folder / "test.npz")
    (folder / "job.json").write_text(json.dumps(description))
    seal(folder)
    return summary


def federated_data(job: Job, folder: Path) -> dict:
    """A federated job's side at the platform: the rows stay at the district nodes, which
    published what the job needs, the neighbourhood vocabulary (every holder encodes alike)
    and their counts. The shared result's weights to start from, if any, are copied here."""
    from federation.models import NodePartition

    parts = list(NodePartition.objects.filter(dataset=job.dataset, node__name__in=job.params["holders"])
                 .select_related("node"))
    vocabulary = sorted({h for p in parts for h in p.neighbourhoods})
    rooms = sum(int(p.kinds.get("room", 0)) for p in parts)
    summary = {"train_rows": None, "test_rows": None, "baseline": None, "neighbourhoods": vocabulary,
               "features": tasks.n_features(vocabulary), "rooms": rooms,
               "partitions": [{"node": p.node.name, "flower_node_id": p.node.flower_node_id, "units": p.units,
                               "sha256": p.sha256} for p in parts]}
    folder.mkdir(parents=True, exist_ok=True)
    if job.base_result_id:
        shutil.copyfile(state_path(job.base_result.submission.path), folder / BASE_WEIGHTS)
        summary["base_weights"] = str(folder / BASE_WEIGHTS)
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

    path = state_path(corpus.path)
    names = [n for n in pq.read_schema(path).names if n not in direct_identifiers()]
    private = pq.read_table(path, columns=names)
    kinds = sorted(set(private["kind"].unique().to_pylist()))
    mock = mock_units(seed=mock_seed(corpus.dataset.slug), rows=MOCK_ROWS, kinds=kinds)
    columns = [mock[n].cast(private.schema.field(n).type) if n in mock.column_names
               else pa.nulls(mock.num_rows, private.schema.field(n).type) for n in names]
    return pa.Table.from_arrays(columns, schema=private.schema), private


def syft_root() -> Path:
    return state_path("syft")


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

    return PublishedDataset(box=state_path(syft_dataset.path), owner=syft_dataset.owner,
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


# --- a job's held output, file by file (for the data owner's stewards) ---------------------

TEXT_SUFFIXES = {".csv", ".json", ".txt", ".md"}
DOWNLOAD_SUFFIXES = TEXT_SUFFIXES | {".pt"}
PREVIEW_BYTES = 64 * 1024
PREVIEW_ROWS = 50


class HeldFile:
    """One regular file of a job's sealed output folder."""

    def __init__(self, index: int, path: Path, name: str):
        self.index, self.path, self.name = index, path, name
        self.size = path.stat().st_size
        self.suffix = path.suffix.lower()

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def is_text(self) -> bool:
        return self.suffix in TEXT_SUFFIXES

    @property
    def content_type(self) -> str:
        return "text/plain; charset=utf-8" if self.is_text else "application/octet-stream"

    @property
    def shown_name(self) -> str:
        from sandbox.outputs import shown_name

        return shown_name(self.name, 120)

    def download_name(self, job) -> str:
        """A name the platform makes (the job's own name can be anything): job, index, suffix."""
        return f"miliao-job-{job.pk}-held-{self.index}{self.suffix if self.suffix in DOWNLOAD_SUFFIXES else '.bin'}"

    def describe(self) -> dict:
        return {"index": self.index, "name": self.shown_name, "size": self.size, "sha256": self.sha256,
                "content_type": self.content_type}

    def preview(self) -> dict:
        """The file's start as text (or a CSV's first rows as cells), for the job page; the
        template escapes it."""
        import csv
        import io

        with open(self.path, "rb") as f:
            head = f.read(PREVIEW_BYTES)
        text = head.decode("utf-8", "replace")
        out = {"truncated": self.size > PREVIEW_BYTES}
        if self.suffix == ".pt":
            return {"tensors": weights_summary(self.path)}
        if self.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(text)))[:PREVIEW_ROWS + 1]
            out.update(header=rows[0] if rows else [], rows=rows[1:], more_rows=text.count("\n") > PREVIEW_ROWS)
        else:
            out["text"] = text
        return out


def weights_summary(path: Path) -> list[dict]:
    """A held model's metadata for its review: each tensor of the state_dict with its shape,
    type and number of values, read with torch's safe loader (weights_only: no code runs)."""
    import torch

    from sandbox.challenge import check_weights_archive

    try:  # a job wrote this file: its archive's claimed sizes are checked before torch allocates them
        check_weights_archive(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights archive torch's safe loader reads: nothing to list
        return []
    if not isinstance(state, dict):
        return []
    return [{"name": str(name), "shape": " × ".join(str(n) for n in value.shape) or "1",
             "dtype": str(value.dtype).removeprefix("torch."), "values": value.numel()}
            for name, value in state.items() if isinstance(value, torch.Tensor)][:PREVIEW_ROWS]


def held_files(job) -> list[HeldFile]:
    """The regular files of a job's held output, in a stable order (sandbox.outputs made the
    folder: nothing else is in it, but a link is skipped all the same)."""
    if not job.output_path:
        return []
    folder = state_path(job.output_path)
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(top) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return [HeldFile(i, p, str(p.relative_to(folder))) for i, p in enumerate(found, 1)]
