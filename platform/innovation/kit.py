"""A challenge's starter kit: a zip a newcomer can produce a valid submission from without
seeing any private row. It holds mock rows (synthetic, corpora.mock) in the hidden test set's
columns, the task's spec and schema, runnable templates for both submission formats, and a
local scorer that scores them on the mock rows the way the platform scores the hidden ones:
the kit ships the platform's own sandbox/tasks.py, training.py and challenge.py."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from corpora.mock import mock_seed, mock_units
from kernel import texts as task_texts
from sandbox import tasks as sandbox_tasks

from .models import Challenge

KIT = Path(__file__).resolve().parent / "kit"
SANDBOX = Path(sandbox_tasks.__file__).resolve().parent
SHIPPED = ("__init__.py", "tasks.py", "training.py", "challenge.py")
MOCK_ROOMS = 1000


def public_spec(challenge: Challenge) -> dict:
    """What a team may know of the challenge: never the split's salt or a hidden row."""
    task = sandbox_tasks.task_named(challenge.task)
    return {
        "challenge": challenge.slug, "task": challenge.task, "metric": task.metric, "target": task.target,
        "neighbourhoods": challenge.spec["neighbourhoods"], "feature_columns": sandbox_tasks.FEATURE_COLUMNS,
        "submissions": {
            "weights": "a PyTorch state_dict of sandbox.training.build_model for the task (torch.save)",
            "code": "a Python script: python predict.py FEATURES.parquet, writing predictions.csv (unit_id,prediction)",
        },
        "daily_limit": challenge.daily_limit, "max_submission_bytes": challenge.max_submission_bytes,
        "leaderboard": {"mechanism": "Ladder (Blum & Hardt 2015)", "step": challenge.ladder_step},
        "timeline": {"opens_at": challenge.opens_at.isoformat(), "final_at": challenge.final_at.isoformat(),
                     "closes_at": challenge.closes_at.isoformat()},
        "training_dataset": challenge.training_dataset.slug,
    }


def _schema(table: pa.Table, task) -> list[dict]:
    return [{"name": f.name, "type": str(f.type), "role": "target" if f.name == task.target else
             "feature" if f.name in sandbox_tasks.FEATURE_COLUMNS else "other"} for f in table.schema]


def starter_kit(challenge: Challenge) -> bytes:
    task = sandbox_tasks.task_named(challenge.task)
    spec = public_spec(challenge)
    mock = mock_units(seed=mock_seed(f"challenge:{challenge.slug}"), rows=MOCK_ROOMS, kinds=["room"])
    mock = mock.select(sandbox_tasks.COLUMNS)
    test = sandbox_tasks.holdout_mask(mock["unit_id"], salt=challenge.slug)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.md", _readme(challenge, spec, task))
        archive.writestr("spec.json", json.dumps(spec, ensure_ascii=False, indent=2))
        archive.writestr("schema.json", json.dumps(_schema(mock, task), indent=2))
        for name, part in (("train", mock.filter(pa.array(~test))), ("test", mock.filter(pa.array(test)))):
            sink = io.BytesIO()
            pq.write_table(part, sink)
            archive.writestr(f"mock/{name}.parquet", sink.getvalue())
        for name in ("train.py", "predict.py", "score.py"):
            archive.write(KIT / name, name)
        for name in SHIPPED:
            archive.write(SANDBOX / name, f"sandbox/{name}")
    return buffer.getvalue()


def _readme(challenge: Challenge, spec: dict, task) -> str:
    """The kit's guide, in the language of the request that downloads it."""
    local = timezone.localtime
    return gettext(README) % {
        "title": challenge.title, "slug": challenge.slug, "scenario": challenge.scenario.title,
        "task_title": task_texts.task_title(task.name), "task": task.name, "kind": task_texts.task_kind(task.kind),
        "metric": task_texts.metric_name(task.metric),
        "better": gettext("higher is better") if task.kind == "classification" else gettext("lower is better"),
        "opens": f"{local(challenge.opens_at):%Y-%m-%d %H:%M}", "final": f"{local(challenge.final_at):%Y-%m-%d %H:%M}",
        "closes": f"{local(challenge.closes_at):%Y-%m-%d %H:%M}", "daily_limit": challenge.daily_limit,
        "max_bytes": challenge.max_submission_bytes, "training_dataset": spec["training_dataset"],
        "rules": challenge.rules, "step": challenge.ladder_step,
    }


README = gettext_noop("""# %(title)s (%(slug)s)

Scenario: %(scenario)s. Task: **%(task_title)s** (`%(task)s`, %(kind)s); metric: **%(metric)s**
(%(better)s), on a hidden test set that is compute-only:
no team ever sees its rows, and submissions run without network on its features only.

Timeline: opens %(opens)s, submissions until %(final)s,
closes %(closes)s. At most %(daily_limit)s submissions per team per day, each
at most %(max_bytes)s bytes.

## What is here

- `mock/train.parquet`, `mock/test.parquet`: synthetic rooms (never real ones) in the hidden set's columns, with labels.
- `spec.json`, `schema.json`: the task, the feature columns, the neighbourhoods every model is encoded with.
- `train.py`: trains the built-in model (`python train.py`, or on the training data `%(training_dataset)s` in the
  same columns) and writes `model.pt`, a **weights** submission.
- `predict.py`: a **code** submission template: `python predict.py FEATURES.parquet` writes `predictions.csv`.
- `score.py`: scores either on the mock test rows, as the platform will on the hidden ones:
  `python score.py model.pt` or `python score.py predict.py`.
- `sandbox/`: the platform's own task, model and scoring code, which the platform runs your submission with.

Needs Python 3.11 with `torch`, `pyarrow` and `numpy`.

## Rules

%(rules)s

## The leaderboard

The public board scores each submission on a public part of the hidden set and shows each team's score through the
**Ladder** (Blum & Hardt 2015) with step η = %(step)s: your board score changes only when a submission
beats it by more than η, and then to that score rounded to a multiple of η. Probing the board with many variants
learns almost nothing about the hidden labels. The final ranking is computed once, at the close, on a private part
no submission was ever scored on: by default your best submission, or the one you choose as final.
""")
