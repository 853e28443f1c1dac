"""Evaluating a challenge submission on a hidden test set, with the labels kept out of the
jail. Plain Python: the platform scores with it, and a challenge's starter kit ships it so a
team's local scorer computes exactly what the platform will.

The hidden test set's rooms are split by a salted hash of their unit ids into a public part
(the public leaderboard) and a private part (the final board). What the jail gets is the
part's feature columns only (`tasks.FEATURE_COLUMNS`); a submission writes `predictions.csv`
(`unit_id,prediction`, the use's name or the monthly rent in yuan), which is read and scored
outside the jail.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import tasks

PUBLIC_SHARE = 0.5
FEATURES_FILE = "features.parquet"
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.csv"
RESULT_FILE = "result.json"
# What a weights file may unpack to. torch.save stores its records uncompressed, so an honest
# file unpacks to about its own size; a deflated one of zeros unpacks to ~1000 times it.
WEIGHTS_UNPACKED_MAX = 64 * 2**20
WEIGHTS_RECORDS_MAX = 4096
INSPECT = Path(__file__).resolve().parent / "jobs" / "inspect_weights.py"


def hidden_rooms(table: pa.Table, task: tasks.Task) -> pa.Table:
    """The rooms of a hidden test set that have the task's target."""
    return table.filter(pc.and_(pc.equal(table["kind"], "room"), pc.is_valid(table[task.target])))


def split(rooms: pa.Table, salt: str) -> tuple[pa.Table, pa.Table]:
    """(public, private) parts, by a salted hash of each unit id: fixed for a challenge."""
    share = np.array([int.from_bytes(hashlib.blake2b(f"{salt}{u}".encode(), digest_size=4).digest(), "big") / 2**32
                      for u in rooms["unit_id"].to_pylist()])
    public = share < PUBLIC_SHARE
    return rooms.filter(pa.array(public)), rooms.filter(pa.array(~public))


def write_inputs(folder: Path, part: pa.Table, spec: dict) -> None:
    """What a submission may read: the part's feature columns and the task's spec."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(part.select(tasks.FEATURE_COLUMNS), folder / FEATURES_FILE)
    (folder / SPEC_FILE).write_text(json.dumps(spec, ensure_ascii=False))


def predict_with_weights(state: dict, features_table: pa.Table, spec: dict) -> pa.Table:
    """Predictions of a built-in task's MLP, given as a state_dict, in the target's terms."""
    import torch

    from . import training

    task = tasks.task_named(spec["task"])
    x = tasks.features(features_table, spec["neighbourhoods"])
    first = state.get("0.weight")
    if first is None or first.ndim != 2:
        raise ValueError("weights: not the built-in task's model (no first layer '0.weight')")
    model = training.build_model(task, x.shape[1], int(first.shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"weights: do not fit the task's model with {x.shape[1]} features: {exc}") from None
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    return pa.table({"unit_id": features_table["unit_id"], "prediction": tasks.natural(task, out)})


def check_weights_archive(path: Path, limit: int = WEIGHTS_UNPACKED_MAX) -> int:
    """The bytes a torch checkpoint (a zip archive) unpacks to, summed from its central
    directory without unpacking anything; ValueError if it is no zip or unpacks to more than
    `limit` (torch allocates each record at the size the directory gives)."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ValueError("weights: not a PyTorch state_dict of tensors (not the zip archive torch.save "
                         "writes)") from None
    if len(records) > WEIGHTS_RECORDS_MAX:
        raise ValueError(f"weights: {len(records)} records in the archive, more than the {WEIGHTS_RECORDS_MAX} "
                         "allowed")
    unpacked = sum(r.file_size for r in records)
    if unpacked > limit:
        raise ValueError(f"weights: unpack to {unpacked} bytes, more than the {limit} allowed (refused before "
                         "loading; torch.save writes records uncompressed)")
    return unpacked


def load_weights(path: Path) -> dict:
    """A state_dict of plain tensors (torch's safe loader: no code runs), or ValueError.
    The archive's unpacked size is checked first; the platform calls this only inside the
    jail (`inspect_weights`, the evaluation), where memory is limited too."""
    import torch

    check_weights_archive(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # anything but plain tensors is refused
        raise ValueError(f"weights: not a PyTorch state_dict of tensors ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("weights: not a PyTorch state_dict of tensors")
    if not all(torch.isfinite(v).all().item() for v in state.values() if v.is_floating_point()):
        raise ValueError("weights: some values are not finite")
    return state


def inspect_weights(path: Path, spec: dict, *, work: Path) -> dict:
    """Check a weights file in the jail: it unpacks within the limit, loads as plain tensors
    and fits the task's model for `spec`'s features. Returns what it holds (`hidden`: the
    first layer's width, `tensors`); ValueError naming what is wrong. The caller's process
    reads only the archive's directory, never the tensors."""
    from .isolation import Limits, run_isolated

    check_weights_archive(path)  # a bomb is refused before a jail is started for it
    data, out = work / "data", work / "out"
    data.mkdir(parents=True, exist_ok=True)
    (data / WEIGHTS_FILE).write_bytes(Path(path).read_bytes())
    (data / SPEC_FILE).write_text(json.dumps(spec, ensure_ascii=False))
    outcome = run_isolated(INSPECT, data=data, work=out, args=[str(data)], limits=Limits(
        cpu_seconds=60, memory_mb=2048, wall_seconds=120, processes=16, output_mb=1, threads=1, disk_mb=4, files=64))
    result = out / RESULT_FILE
    if not outcome.ok or not result.is_file() or result.is_symlink():
        raise ValueError(f"weights: could not be checked ({outcome.reason or 'no result'}: {outcome.message})")
    found = json.loads(result.read_text()[:10_000])
    if "error" in found:
        raise ValueError(str(found["error"])[:500])
    return {"hidden": int(found["hidden"]), "tensors": int(found["tensors"])}


def read_predictions(path: Path, part: pa.Table) -> pa.Array:
    """The predictions for `part`'s rooms, in its order; ValueError saying what is wrong in
    fixed words: the file is the submission's, so no message quotes it (a header or a line
    of it could be hidden rows) or gives a count it chose."""
    if not path.is_file():
        raise ValueError(f"{PREDICTIONS_FILE}: the submission wrote none")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={"unit_id": pa.string()}, strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError):
        raise ValueError(f"{PREDICTIONS_FILE}: not a CSV table") from None
    if not {"unit_id", "prediction"} <= set(table.column_names):
        raise ValueError(f"{PREDICTIONS_FILE}: needs the columns unit_id and prediction")
    if table.num_rows != part.num_rows or pc.count_distinct(table["unit_id"]).as_py() != table.num_rows:
        raise ValueError(f"{PREDICTIONS_FILE}: needs exactly one row for each room of the test part")
    order = pc.index_in(part["unit_id"], value_set=table["unit_id"])
    if order.null_count:
        raise ValueError(f"{PREDICTIONS_FILE}: some rooms of the test part have no prediction")
    return table["prediction"].take(order)


def score(task: tasks.Task, predictions: pa.Array, part: pa.Table) -> float:
    """Accuracy, or RMSE of log rent: the metric the task names."""
    truth = tasks.target(part, task)
    guess = tasks.encoded(task, predictions)
    if task.kind == "classification":
        return float(np.mean(guess == truth))
    return float(np.sqrt(np.mean((guess - truth) ** 2)))


def higher_is_better(task: tasks.Task) -> bool:
    return task.kind == "classification"
