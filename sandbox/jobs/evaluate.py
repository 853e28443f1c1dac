"""A challenge submission's model weights, run inside the jail on a hidden test part's
features (no labels are there):

    python sandbox/jobs/evaluate.py DATA_DIR

DATA_DIR holds features.parquet, spec.json and model.pt, all read-only. Writes
predictions.csv to the working folder; the platform scores it outside the jail.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox import challenge


def main(data: Path) -> None:
    spec = json.loads((data / challenge.SPEC_FILE).read_text())
    state = challenge.load_weights(data / challenge.WEIGHTS_FILE)
    predictions = challenge.predict_with_weights(state, pq.read_table(data / challenge.FEATURES_FILE), spec)
    pacsv.write_csv(predictions, challenge.PREDICTIONS_FILE)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
