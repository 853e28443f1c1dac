"""A job's DP-SGD runs from a seed nobody knows: drawn per run and kept out of the job's
stored parameters, so its noise can neither be replayed by the submitter (who holds the code
and the stored default) nor shared by two runs on neighbouring data."""
from __future__ import annotations

import json

import pytest

from sandbox_support import add_rooms_corpus, approve_lab

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


def test_each_run_of_a_job_draws_its_own_secret_seed(world, tmp_path):
    from jobs import actions, data

    add_rooms_corpus(world, rooms=800)
    approve_lab(world)
    job = actions.submit_job(actor=world.researcher, dataset=world.rooms, kind="centralized", title="seeds",
                             task="room-use", params={"epochs": 1, "target_epsilon": 2.0, "delta": 1e-5})
    seeds = []
    for run in range(3):
        data.training_data(job, tmp_path / str(run))
        seeds.append(json.loads((tmp_path / str(run) / "job.json").read_text())["train"]["seed"])
    assert len(set(seeds)) == 3
    assert job.params.get("seed") not in seeds
