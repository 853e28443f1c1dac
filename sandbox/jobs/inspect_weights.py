"""A weights submission, checked inside the jail before the platform stores it:

    python sandbox/jobs/inspect_weights.py DATA_DIR

DATA_DIR holds model.pt and spec.json, read-only. Loads the weights (checking the archive's
unpacked size first), runs the task's model on no rows to see that they fit it, and writes
result.json: `{"hidden": ..., "tensors": ...}` or `{"error": "weights: ..."}`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa

from sandbox import challenge


def main(data: Path) -> dict:
    spec = json.loads((data / challenge.SPEC_FILE).read_text())
    try:
        state = challenge.load_weights(data / challenge.WEIGHTS_FILE)
        probe = pa.table({c: pa.array([], t) for c, t in (
            ("unit_id", pa.string()), ("district", pa.string()), ("neighbourhood", pa.string()),
            ("floor", pa.int16()), ("area_m2", pa.float64()), ("build_year", pa.int16()))})
        challenge.predict_with_weights(state, probe, spec)
    except ValueError as exc:
        return {"error": str(exc)}
    return {"hidden": int(state["0.weight"].shape[0]), "tensors": len(state)}


if __name__ == "__main__":
    Path(challenge.RESULT_FILE).write_text(json.dumps(main(Path(sys.argv[1]))))
