"""The ServerApp's server optimizer: the strategy built from a run config is Flower's FedAdam
with the run's η (federated jobs' default: tests/jobs/test_federated_params.py), and its step
is not the holders' plain average; FedAvg's is. Under SecAgg+ the strategy receives one result, the masked sum's
average, which is what these tests hand it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.sandbox

APP = Path(__file__).resolve().parents[2] / "sandbox" / "federated" / "app"
RC = {"num-server-rounds": 3, "min-nodes": 2, "local-dp": True, "dp": "client", "clipping-norm": 10.0,
      "noise-multiplier": 0.0, "server-optimizer": "fedadam", "server-learning-rate": 0.05, "server-tau": 1e-3}
INITIAL = [np.zeros((3, 2), dtype=np.float32), np.full(2, 0.5, dtype=np.float32)]
UPDATE = [np.array([[0.3, -0.2], [0.01, 0.0], [-2.0, 1.0]], dtype=np.float32), np.array([0.4, -0.05], np.float32)]


def _app_module(name: str):
    """A module of the Flower App (miliao_fl), imported from its folder as the FAB would."""
    import importlib

    sys.path.insert(0, str(APP))
    try:
        return importlib.import_module(f"miliao_fl.{name}")
    finally:
        sys.path.remove(str(APP))


@pytest.fixture(scope="module")
def server_app():
    return _app_module("server_app")


def _aggregate(strategy, arrays):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    result = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), 1000, {})
    parameters, _ = strategy.aggregate_fit(1, [(None, result)], [])
    return parameters_to_ndarrays(parameters)


def test_fedadam_with_the_runs_eta_is_the_strategy_and_its_step_is_not_the_average(server_app):
    from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAdam

    strategy = server_app.build_strategy(RC, INITIAL, sampled=3)
    assert isinstance(strategy, DifferentialPrivacyClientSideFixedClipping)  # the DP wrapper stays outermost
    adam = strategy.strategy
    assert isinstance(adam, FedAdam) and adam.eta == RC["server-learning-rate"] and adam.tau == 1e-3
    average = [x + u for x, u in zip(INITIAL, UPDATE)]
    new = _aggregate(strategy, average)
    step = np.concatenate([(n - x).ravel() for n, x in zip(new, INITIAL)])
    mean_update = np.concatenate([u.ravel() for u in UPDATE])
    assert not np.allclose(step, mean_update)  # not the holders' average
    # Adam's first step: a coordinate moves by about the bias-corrected η in the direction of
    # the mean update, whatever its size (0.2 as 2.0), less where τ weighs (0.01, 0.05); one
    # whose mean update is 0 stays.
    eta = RC["server-learning-rate"] * np.sqrt(1 - 0.99 ** 2) / (1 - 0.9 ** 2)
    large, small = np.abs(mean_update) >= 0.2, (np.abs(mean_update) > 0) & (np.abs(mean_update) < 0.2)
    np.testing.assert_allclose(step[large], eta * np.sign(mean_update[large]), rtol=0.1)
    assert np.all(np.sign(step[small]) == np.sign(mean_update[small])) and np.all(np.abs(step[small]) < eta)
    assert step[mean_update == 0] == pytest.approx(0.0, abs=1e-9)
    # Its state carries over: a second round of the same update moves on from the first.
    again = _aggregate(strategy, [n + u for n, u in zip(new, UPDATE)])
    assert all(np.all(np.abs(a - x) > np.abs(n - x) - 1e-7) for a, n, x in zip(again, new, INITIAL))


def test_fedavg_takes_the_average_and_fedadam_is_refused_without_dp_sgd_at_the_holders(server_app):
    from flwr.server.strategy import FedAdam, FedAvg

    strategy = server_app.build_strategy({**RC, "server-optimizer": "fedavg"}, INITIAL, sampled=3)
    assert isinstance(strategy.strategy, FedAvg) and not isinstance(strategy.strategy, FedAdam)
    average = [x + u for x, u in zip(INITIAL, UPDATE)]
    assert all(np.array_equal(n, a) for n, a in zip(_aggregate(strategy, average), average))
    with pytest.raises(ValueError, match="server-optimizer: fedadam needs DP-SGD at the holders"):
        server_app.build_strategy({**RC, "local-dp": False}, INITIAL, sampled=3)
    with pytest.raises(ValueError, match="server-optimizer: one of fedadam, fedavg"):
        server_app.build_strategy({**RC, "server-optimizer": "fedsgd"}, INITIAL, sampled=3)


@pytest.fixture(scope="module")
def weights():
    return _app_module("weights")


def test_the_model_travels_as_one_vector_that_clips_and_averages_as_its_tensors_would(weights, server_app):
    """One array a message, not one a tensor (each array is objects the SuperLink stores and
    hands out): the state comes back whole, and Flower's clipping and the server optimizer's
    step give the same numbers on the vector as on the tensors."""
    import torch
    from flwr.supercore.differential_privacy import compute_clip_model_update

    from sandbox import tasks, training

    model = training.build_model(tasks.task_named("room-use"), 7, 16)
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    flat = weights.arrays_of(state)
    assert len(flat) == 1 and flat[0].shape == (sum(v.numel() for v in state.values()),)
    back = weights.state_from(model, flat)
    assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)

    initial = [v.numpy() for v in model.state_dict().values()]
    layered = [v.numpy().copy() for v in state.values()]
    vector = [flat[0].copy()]
    compute_clip_model_update(layered, initial, clipping_norm=1.0)  # what fixedclipping_mod does to an update
    compute_clip_model_update(vector, weights.arrays_of(model.state_dict()), clipping_norm=1.0)
    np.testing.assert_allclose(vector[0], np.concatenate([a.ravel() for a in layered]), rtol=1e-5, atol=1e-7)

    steps = [_aggregate(server_app.build_strategy(RC, start, sampled=2), update)
             for start, update in ((initial, layered), (weights.arrays_of(model.state_dict()), vector))]
    np.testing.assert_allclose(steps[1][0], np.concatenate([a.ravel() for a in steps[0]]), rtol=1e-5, atol=1e-7)

    with pytest.raises(ValueError, match="expected one vector of"):
        weights.state_from(model, layered)
