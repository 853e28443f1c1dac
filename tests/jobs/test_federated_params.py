"""A federated job's parameters: left out, they are the ones that reach the accuracy goal of
bench/training.py (10 rounds of 2 local epochs, FedAdam on the server with η 0.05); a server
optimizer that is not offered, FedAdam without DP-SGD at the holders, or a bad η is refused,
naming the field, and creates nothing."""
from __future__ import annotations

import pytest
from conftest import api_client
from federation_support import district_rooms
from sandbox_support import approve_lab

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


@pytest.fixture
def rooms_world(world, standing_federation):
    district_rooms(world, standing_federation)  # federated jobs run on district-held data
    approve_lab(world, epsilon="10")
    return world


def _submit(w, kind="federated", **params):
    return api_client(w.researcher).post("/api/jobs/", {
        "dataset": "district-rooms", "kind": kind, "title": "room use", "task": "room-use", "params": params},
        format="json")


def test_federated_defaults_and_bad_server_optimizer_params(rooms_world):
    from jobs.models import Job

    w = rooms_world
    created = _submit(w, target_epsilon=3.0)
    assert created.status_code == 201, created.content
    params = Job.objects.get(pk=created.json()["id"]).params
    assert {k: params[k] for k in ("rounds", "epochs", "batch_size", "learning_rate", "server_optimizer",
                                   "server_lr", "local_dp")} == {
        "rounds": 10, "epochs": 2, "batch_size": 2048, "learning_rate": 0.5, "server_optimizer": "fedadam",
        "server_lr": 0.05, "local_dp": True}
    chosen = _submit(w, target_epsilon=3.0, epochs=3, server_optimizer="fedavg")
    assert chosen.status_code == 201, chosen.content
    assert Job.objects.get(pk=chosen.json()["id"]).params["epochs"] == 3
    jobs = Job.objects.count()
    for params, field, words in (
            ({"server_optimizer": "fedsgd"}, "params.server_optimizer", "one of fedadam, fedavg"),
            ({"local_dp": False}, "params.server_optimizer", "fedadam needs DP-SGD at the holders"),
            ({"server_lr": 0}, "params.server_lr", "a number in (0, 10)")):
        refused = _submit(w, target_epsilon=3.0, **params)
        assert refused.status_code == 400 and words in refused.json()[field][0], refused.content
    refused = _submit(w, kind="centralized", target_epsilon=3.0, server_lr=0.1)
    assert refused.status_code == 400 and "server_lr" in refused.json()["params"][0], refused.content
    assert Job.objects.count() == jobs
