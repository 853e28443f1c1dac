"""Built-in learning tasks on the generated corpora, as plain arrays.

A task turns a corpus version's room rows into a feature matrix and a target, using the
signal the district generator plants: a room's use follows its floor, its size and the
character of its neighbourhood; its rent follows area, neighbourhood price, use, floor and
age. No identifier, name, address or free text ever becomes a feature.

Every holder of a federated job must encode rooms the same way, so the neighbourhood
vocabulary is part of the job's spec (read once from the corpus by the platform), not
something each holder derives from its own partition.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

USES = ("residential", "office", "retail", "restaurant", "clinic", "storage")
COLUMNS = ["unit_id", "kind", "district", "neighbourhood", "floor", "area_m2", "build_year", "room_use",
           "monthly_rent"]
LOG_RENT_CENTRE = 9.0  # the regression target is log(rent) less this, so SGD starts near it
HOLDOUT_SHARE = 0.2  # rooms whose id hashes below this share are the held-out test set


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "classification" or "regression"
    target: str  # the corpus column it predicts
    title: str
    metric: str  # what `evaluate` reports first
    outputs: int

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "target": self.target, "title": self.title,
                "metric": self.metric}


TASKS = {
    "room-use": Task("room-use", "classification", "room_use", "Room use from floor, size and neighbourhood",
                     "accuracy", len(USES)),
    "rent": Task("rent", "regression", "monthly_rent", "log monthly rent from area, floor, age and neighbourhood",
                 "rmse", 1),
}


def task_named(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task: unknown built-in task {name!r}; one of {', '.join(TASKS)}") from None


@dataclass
class Arrays:
    x: np.ndarray  # float32 (n, features)
    y: np.ndarray  # int64 class index, or float32 target
    district: np.ndarray  # district name per row, for partitioning

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Arrays:
        return Arrays(self.x[mask], self.y[mask], self.district[mask])

    def save(self, path) -> None:
        np.savez(path, x=self.x, y=self.y, district=self.district.astype(str))

    @classmethod
    def load(cls, path) -> Arrays:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["x"], f["y"], f["district"])


def vocabulary(table: pa.Table) -> list[str]:
    """The neighbourhoods of a corpus's rooms, sorted: the one-hot columns of every holder."""
    rooms = table.filter(pc.equal(table["kind"], "room"))
    return sorted(v for v in pc.unique(rooms["neighbourhood"]).to_pylist() if v)


def n_features(neighbourhoods: list[str]) -> int:
    return len(neighbourhoods) + 6


def encode(table: pa.Table, task: Task, neighbourhoods: list[str]) -> Arrays:
    """Rooms with a value for the target, as (features, target); other kinds are skipped."""
    rooms = table.filter(pc.and_(pc.equal(table["kind"], "room"), pc.is_valid(table[task.target])))
    return Arrays(features(rooms, neighbourhoods), target(rooms, task),
                  np.asarray(rooms["district"].to_numpy(zero_copy_only=False), dtype=str))


# The columns a model's features come from: what a challenge's hidden test set shows a
# submission (never the targets).
FEATURE_COLUMNS = ["unit_id", "district", "neighbourhood", "floor", "area_m2", "build_year"]


def features(rooms: pa.Table, neighbourhoods: list[str]) -> np.ndarray:
    """The feature matrix of rooms: the neighbourhood one-hot, floor bands, log area and age."""
    n = rooms.num_rows
    floor = rooms["floor"].to_numpy(zero_copy_only=False).astype(np.float32)
    area = rooms["area_m2"].to_numpy(zero_copy_only=False).astype(np.float32)
    year = rooms["build_year"].to_numpy(zero_copy_only=False).astype(np.float32)
    hood = _index(rooms["neighbourhood"], neighbourhoods)
    onehot = np.zeros((n, len(neighbourhoods)), np.float32)
    known = hood >= 0
    onehot[np.flatnonzero(known), hood[known]] = 1.0
    return np.nan_to_num(np.column_stack([
        onehot,
        floor < 0, floor == 1, (floor >= 2) & (floor <= 3),
        np.clip(floor, -3, 40) / 10.0,
        (np.log(np.maximum(area, 1.0)) - 4.0),
        (year - 1990.0) / 30.0,
    ]).astype(np.float32))


def target(rooms: pa.Table, task: Task) -> np.ndarray:
    """The task's target as a model learns it: a use's index, or log rent less the centre."""
    if task.kind == "classification":
        y = _index(rooms[task.target], USES)
        if (y < 0).any():
            raise ValueError(f"{task.target}: values outside {', '.join(USES)}")
        return y
    rent = rooms[task.target].to_numpy(zero_copy_only=False)
    return (np.log(np.maximum(rent, 1.0)) - LOG_RENT_CENTRE).astype(np.float32)


def natural(task: Task, encoded: np.ndarray) -> list:
    """A model's outputs in the target's own terms: use names, or monthly rent in yuan."""
    if task.kind == "classification":
        return [USES[i] for i in np.asarray(encoded).argmax(1)]
    return np.exp(np.asarray(encoded, dtype=np.float64).reshape(-1) + LOG_RENT_CENTRE).tolist()


def encoded(task: Task, values: pa.Array) -> np.ndarray:
    """Predictions in the target's own terms, as `target` encodes them (-1 for an unknown use)."""
    if task.kind == "classification":
        return _index(values.cast(pa.string()), USES)
    rent = pc.fill_null(values.cast(pa.float64()), 1.0).to_numpy(zero_copy_only=False)
    return (np.log(np.maximum(rent, 1.0)) - LOG_RENT_CENTRE).astype(np.float32)


def _index(column, values) -> np.ndarray:
    """Position of each value in `values`, -1 where absent."""
    found = pc.fill_null(pc.index_in(column, pa.array(list(values), pa.string())), -1)
    return found.to_numpy(zero_copy_only=False).astype(np.int64)


def holdout_mask(unit_ids: list[str] | pa.Array, salt: str = "") -> np.ndarray:
    """Deterministic by unit id: the same room is held out whichever holder has it."""
    ids = unit_ids.to_pylist() if isinstance(unit_ids, (pa.Array, pa.ChunkedArray)) else unit_ids
    return np.array([
        int.from_bytes(hashlib.blake2b(f"{salt}{u}".encode(), digest_size=4).digest(), "big") / 2**32
        < HOLDOUT_SHARE for u in ids
    ], dtype=bool)


def split(table: pa.Table, task: Task, neighbourhoods: list[str], salt: str = "") -> tuple[Arrays, Arrays]:
    """(train, held-out test) of a corpus's rooms."""
    rooms = table.filter(pc.and_(pc.equal(table["kind"], "room"), pc.is_valid(table[task.target])))
    arrays = encode(rooms, task, neighbourhoods)
    test = holdout_mask(rooms["unit_id"], salt)
    return arrays.take(~test), arrays.take(test)


PARTITION_FILE = "units.parquet"


def write_partitions(table: pa.Table, folder) -> list[dict]:
    """One folder per district (`folder/<n>/units.parquet`): the raw rows its holder's
    SuperNode keeps, in the corpus schema (the task columns). The node encodes them itself,
    with the job's vocabulary and held-out salt from the run config."""
    from pathlib import Path

    import pyarrow.parquet as pq

    folder = Path(folder)
    rooms = table.filter(pc.equal(table["kind"], "room")).select(COLUMNS)
    written = []
    for n, district in enumerate(sorted(v for v in pc.unique(rooms["district"]).to_pylist() if v)):
        part = folder / str(n)
        part.mkdir(parents=True)
        mine = rooms.filter(pc.equal(rooms["district"], district))
        pq.write_table(mine, part / PARTITION_FILE)
        written.append({"node": n, "district": district, "rows": mine.num_rows})
    return written


def read_partition(path) -> pa.Table:
    """A holder's rows: a units.parquet file, or a folder holding one."""
    from pathlib import Path

    import pyarrow.parquet as pq

    path = Path(path)
    return pq.read_table(path / PARTITION_FILE if path.is_dir() else path, columns=COLUMNS)


def partition_split(path, task: Task, neighbourhoods: list[str], salt: str = "") -> tuple[Arrays, Arrays]:
    """`split` of a holder's partition (`read_partition`'s `path`), encoded once per setting.

    Every round of a federated run encodes the same rows the same way, each time in a process of
    its own, and reading and encoding 100,000 rooms takes seconds of each round. The holder keeps
    the last encoding beside its partition (`encoded-<key>.npz`: the node's own rows, in the
    node's own folder), keyed by the partition file's size and modification time, the task, the
    vocabulary and the salt, so a changed partition or another job's setting encodes afresh."""
    import hashlib
    import json
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    source = path / PARTITION_FILE if path.is_dir() else path
    stat = source.stat()
    key = hashlib.sha256(json.dumps([stat.st_size, stat.st_mtime_ns, task.name, neighbourhoods, salt],
                                    ensure_ascii=False).encode()).hexdigest()[:24]
    cached = source.parent / f"encoded-{key}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as f:
            return (Arrays(f["train_x"], f["train_y"], f["train_district"]),
                    Arrays(f["test_x"], f["test_y"], f["test_district"]))
    train, test = split(read_partition(source), task, neighbourhoods, salt=salt)
    for old in source.parent.glob("encoded-*.npz"):  # only the latest setting is kept
        old.unlink(missing_ok=True)
    fd, scratch = tempfile.mkstemp(dir=source.parent, suffix=".npz.part")
    with os.fdopen(fd, "wb") as out:
        np.savez(out, train_x=train.x, train_y=train.y, train_district=train.district.astype(str),
                 test_x=test.x, test_y=test.y, test_district=test.district.astype(str))
    os.replace(scratch, cached)  # whole or not at all: a process killed mid-write leaves no cache
    return train, test


def baseline(task: Task, train: Arrays, test: Arrays) -> float:
    """The trivial model's score on `test`: the majority class, or the training mean."""
    if task.kind == "classification":
        majority = np.bincount(train.y, minlength=task.outputs).argmax()
        return float(np.mean(test.y == majority))
    return float(np.sqrt(np.mean((test.y - train.y.mean()) ** 2)))


def better(task: Task, score: float, than: float) -> bool:
    return score > than if task.kind == "classification" else score < than
