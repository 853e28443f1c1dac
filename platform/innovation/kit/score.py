"""The local scorer: score a submission on the kit's mock test rows, as the platform scores
it on the hidden ones.

    python score.py model.pt       # a weights submission
    python score.py predict.py     # a code submission (run here on the mock features)
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from sandbox import challenge, tasks

here = Path(__file__).resolve().parent
spec = json.loads((here / "spec.json").read_text())
task = tasks.task_named(spec["task"])
part = pq.read_table(here / "mock" / "test.parquet")
submission = Path(sys.argv[1]).resolve()
with tempfile.TemporaryDirectory() as scratch:
    scratch = Path(scratch)
    challenge.write_inputs(scratch / "data", part, {"task": spec["task"], "neighbourhoods": spec["neighbourhoods"]})
    if submission.suffix == ".py":
        subprocess.run([sys.executable, str(submission), str(scratch / "data" / challenge.FEATURES_FILE)], cwd=scratch,
                       check=True)
    else:
        state = challenge.load_weights(submission)
        predicted = challenge.predict_with_weights(state, pq.read_table(scratch / "data" / challenge.FEATURES_FILE),
                                                   spec)
        import pyarrow.csv as pacsv

        pacsv.write_csv(predicted, scratch / challenge.PREDICTIONS_FILE)
    predictions = challenge.read_predictions(scratch / challenge.PREDICTIONS_FILE, part)
    print(f"{task.metric} {challenge.score(task, predictions, part):.4f} on {part.num_rows} mock rooms "
          "(a valid submission)")
