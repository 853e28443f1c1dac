"""A weights submission: train the challenge's built-in model and save it as model.pt.

    python train.py                        # on the kit's mock rows (synthetic)
    python train.py path/to/training.parquet   # on the challenge's training data, in the same columns

Submit model.pt as a `weights` submission. Any model works as long as it is the task's MLP
(sandbox/training.py `build_model`, any hidden size) fed by sandbox/tasks.py `features`
with the neighbourhoods in spec.json: that is how the platform will run it.
"""
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch

from sandbox import tasks, training

here = Path(__file__).resolve().parent
spec = json.loads((here / "spec.json").read_text())
task = tasks.task_named(spec["task"])
table = pq.read_table(sys.argv[1] if len(sys.argv) > 1 else here / "mock" / "train.parquet", columns=tasks.COLUMNS)
train, held = tasks.split(table, task, spec["neighbourhoods"])
result = training.fit(task, training.TrainSpec(epochs=30, batch_size=64, learning_rate=0.05, private=False), train,
                      held)
torch.save(result.state, here / "model.pt")
print(f"model.pt written; held-out {task.metric} {result.metrics[task.metric]:.4f} on {len(held)} rows")
