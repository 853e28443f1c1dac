"""Centralized DP training of a built-in task, run inside the jail.

    python sandbox/jobs/centralized.py DATA_DIR

DATA_DIR holds `train.npz`, `test.npz` and `job.json` (the task and its TrainSpec), and
`base.pt` when the job fine-tunes a shared model, all read-only. Writes to the working folder: `progress.jsonl` (one line per epoch, which the
platform shows live), `model.pt` (the state_dict) and `result.json` (history, privacy
accounting, held-out metrics and the trivial baseline).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from sandbox import tasks, training


def main(data: Path) -> None:
    job = json.loads((data / "job.json").read_text())
    task = tasks.task_named(job["task"])
    spec = training.TrainSpec(**job["train"])
    train, test = tasks.Arrays.load(data / "train.npz"), tasks.Arrays.load(data / "test.npz")
    progress = open("progress.jsonl", "a", buffering=1)

    def on_epoch(epoch: int, epochs: int, row: dict) -> None:
        progress.write(json.dumps({"step": epoch, "of": epochs, **row}) + "\n")

    base = data / "base.pt"
    state = torch.load(base, weights_only=True, map_location="cpu") if base.exists() else None
    result = training.fit(task, spec, train, test, state=state, on_epoch=on_epoch)
    torch.save(result.state, "model.pt")
    Path("result.json").write_text(json.dumps({
        "history": result.history, "privacy": result.privacy, "metrics": result.metrics,
        "baseline": tasks.baseline(task, train, test), "train_rows": len(train), "test_rows": len(test),
        "device": str(training.device()),
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
