"""Helpers for the sandbox tests: a compute-only rooms corpus, an approved application
with a privacy budget, and driving a job through the API."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import api_client, wait_for

JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def rooms():
    """A generated district's rooms for the room-use task: (task, train, test)."""
    from corpora.generator import district_units
    from sandbox import tasks

    table = district_units(seed=5, rooms=4000)
    task = tasks.task_named("room-use")
    return task, *tasks.split(table, task, tasks.vocabulary(table))


def generate_rooms(path: Path, *, rooms: int, seed: int):
    """A generated district written as a corpus file at `path`: (path, its summary), for
    `add_rooms_corpus(generated=...)` when a module records the same corpus in each test."""
    from corpora import store
    from corpora.generator import generate_district

    return path, store.write_corpus(generate_district(seed=seed, rooms=rooms), path)


def add_rooms_corpus(w, *, rooms: int = 6000, seed: int = 11, generated=None):
    """A corpus version of the compute-only rooms dataset, generated (or a copy of the file
    `generate_rooms` wrote, with its summary)."""
    import shutil

    from django.conf import settings

    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district

    scratch = Path(settings.STATE_DIR) / "scratch" / f"{w.rooms.slug}-{seed}-{rooms}.parquet"
    if generated is None:
        summary = store.write_corpus(generate_district(seed=seed, rooms=rooms), scratch)
    else:
        path, summary = generated
        scratch.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, scratch)
    w.rooms_corpus = record_corpus_version(actor=w.steward, dataset=w.rooms, file=scratch, source="generator",
                                           source_crs="EPSG:4490", summary=summary)
    return w.rooms_corpus


def approve_lab(w, *, epsilon: str = "10"):
    """The lab's application for the rooms is approved, with a budget of ε `epsilon`."""
    from access import actions as access_actions

    w.app_lab = access_actions.approve_application(actor=w.steward, application=w.app_lab, epsilon=epsilon,
                                                   delta="1e-5")
    return w.app_lab


def submit(w, user=None, **body):
    body.setdefault("dataset", w.rooms.slug)
    return api_client(user or w.researcher).post("/api/jobs/", body, format="json")


def follow_job(w, job_id: int, *, until=("review", "failed", "released", "rejected"), timeout=JOB_TIMEOUT, user=None):
    client = api_client(user or w.researcher)

    last = {}

    def done():
        last.update(client.get(f"/api/jobs/{job_id}/").json())
        return dict(last) if last["status"] in until else None

    try:
        return wait_for(done, timeout=timeout, interval=0.5, what=f"job {job_id} to reach {until}")
    except AssertionError as exc:  # where the job stood, for a run nobody watched (CI)
        from conftest import worker_log_tail

        raise AssertionError(f"{exc}; it is {last.get('status')!r} ({last.get('status_reason')!r}), "
                             f"history {last.get('history')!r}; the jobs worker's log ends:\n"
                             f"{worker_log_tail()}") from None


_TRAINED = {}


def _trained(task_name: str = "room-use"):
    """One small real DP training run per session, reused as the output of reviewed jobs."""
    if task_name not in _TRAINED:
        from corpora.generator import district_units
        from sandbox import tasks, training

        table = district_units(seed=2, rooms=2000)
        task = tasks.task_named(task_name)
        train, test = tasks.split(table, task, tasks.vocabulary(table))
        _TRAINED[task_name] = training.fit(task, training.TrainSpec(epochs=1, target_epsilon=2.0, delta=1e-5),
                                           train, test)
    return _TRAINED[task_name]


def approved_for_a_run_here(w, job):
    """The steward's approval of `job` for a test that then runs it itself, as the worker
    would: the approval's task is not sent, or the session's real jobs worker (conftest's
    `celery_worker`, once any test has started it) would run the same job into the same folder."""
    from unittest import mock

    from jobs import actions
    from miliao.celery import app

    with mock.patch.object(app, "send_task") as sent:
        approved = actions.approve_job(actor=w.steward, job=job)
    assert [c.args[0] for c in sent.call_args_list] in ([], ["jobs.run"])  # [] where the test's transaction never commits
    return approved


def job_in_review(w, *, title: str = "room use"):
    """A centralized job of the lab, approved, run (a real DP training, done here rather than
    on a worker) and held for review."""
    import json

    import torch

    from jobs import actions, runner

    job = actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title=title,
                             task="room-use", params={"epochs": 1, "target_epsilon": 2.0, "delta": 1e-5})
    job = approved_for_a_run_here(w, job)
    job = actions.start_job(job=job, entry=actions.charge(job))
    trained = _trained()
    root = actions.job_dir(job)
    if root.exists():  # a folder left by an earlier test's job of the same id (ids restart with the database)
        runner.remove_working_folders(root, keep_output=False)
    (root / "work").mkdir(parents=True, exist_ok=True)
    torch.save(trained.state, root / "work" / "model.pt")
    (root / "work" / "result.json").write_text(json.dumps({"privacy": trained.privacy}))
    result = runner._hold_output(job, root, {"privacy": dict(trained.privacy), "history": trained.history,
                                             "metrics": {**trained.metrics, "baseline": 0.5}, "outcome": {},
                                             "log": "epoch 1 done"})
    actions.settle_charge(job, actions.spent_of(job, result["privacy"]))
    return actions.finish_job(job=job, result=result)


def downloaded_model_scores(w, model_id: int, table=None, salt: str | None = None) -> tuple[float, float]:
    """(accuracy, majority-class accuracy) on the rooms the job held out (the platform's split,
    recomputed here) of a released model's weights, downloaded as the lab would. `table`: the
    rows to split and the split's salt (the job's corpus version's hash), where the platform
    holds none (the district nodes' partitions, read here)."""
    import io

    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from django.conf import settings

    from sandbox import tasks, training

    weights = api_client(w.researcher).get(f"/api/models/{model_id}/weights/")
    assert weights.status_code == 200, weights
    state = torch.load(io.BytesIO(b"".join(weights.streaming_content)), weights_only=True)
    task = tasks.task_named("room-use")
    if table is None:
        table = pq.read_table(Path(settings.STATE_DIR) / w.rooms_corpus.path, columns=tasks.COLUMNS)
    train, held = tasks.split(table, task, tasks.vocabulary(table), salt=salt or w.rooms_corpus.sha256)
    model = training.build_model(task, held.x.shape[1])
    model.load_state_dict(state)
    return training.evaluate(task, model, held)["accuracy"], float(np.mean(held.y == np.bincount(train.y).argmax()))
