"""The ServerApp's view of holders that do not answer: it leaves them out of the rest of the
run, and stops the run with its reason once fewer than `min_nodes` are left, rather than
waiting in the next round for holders it left out (a run on CI hung there until the job's
wall-clock limit). The grid here answers as Flower's does: a reply per holder that answered
within the stage's time, none for the others."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox" / "federated" / "app"))

from miliao_fl.server_app import SilentHoldersLeft, TooFewHolders  # noqa: E402

pytestmark = pytest.mark.sandbox


class Grid:
    """Three holders; those in `late` answer after the stage's time, so no reply comes back."""

    def __init__(self, late=()):
        self.late, self.asked = set(late), []

    def get_node_ids(self):
        return [1, 2, 3]

    def send_and_receive(self, messages, *, timeout=None):
        self.asked.append(sorted(m.metadata.dst_node_id for m in messages))
        return [SimpleNamespace(metadata=SimpleNamespace(src_node_id=m.metadata.dst_node_id), has_error=lambda: False)
                for m in messages if m.metadata.dst_node_id not in self.late]


def stage(grid, nodes):
    return grid.send_and_receive([SimpleNamespace(metadata=SimpleNamespace(dst_node_id=n)) for n in nodes],
                                 timeout=30)


def test_a_late_holder_is_left_out_and_the_run_goes_on_with_the_others():
    inner = Grid(late={3})
    grid = SilentHoldersLeft(inner, min_nodes=2, timeout=30)
    assert len(stage(grid, grid.get_node_ids())) == 2
    assert grid.get_node_ids() == [1, 2]  # the next stage and round ask only these
    stage(grid, grid.get_node_ids())
    assert inner.asked == [[1, 2, 3], [1, 2]]


def test_only_the_holders_the_job_names_are_asked():
    inner = Grid()  # node 3 is online at the SuperLink for another dataset
    grid = SilentHoldersLeft(inner, min_nodes=2, timeout=30, named=["1", "2"])
    assert grid.get_node_ids() == [1, 2]
    stage(grid, grid.get_node_ids())
    assert inner.asked == [[1, 2]]
    assert SilentHoldersLeft(Grid(), min_nodes=2, timeout=30, named=[]).get_node_ids() == [1, 2, 3]


def test_too_few_answering_holders_stop_the_run_with_the_reason():
    grid = SilentHoldersLeft(Grid(late={1, 2, 3}), min_nodes=2, timeout=30)
    with pytest.raises(TooFewHolders, match=r"only 0 of 3 holders answered within 30 s, and 0 are left, "
                                            r"fewer than the minimum of 2"):
        stage(grid, grid.get_node_ids())


def _fit_res(value: float, examples: int = 10):
    import numpy as np
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return None, FitRes(status=Status(code=Code.OK, message=""), parameters=ndarrays_to_parameters([np.full(3, value)]),
                        num_examples=examples, metrics={})


def test_a_round_with_a_dropped_holder_is_aggregated_from_the_others_and_counted_weaker():
    """Flower's DP wrapper drops a whole round with any failure. A holder whose SuperNode died
    answers with an error (once the SuperLink notices), one merely late not at all: both are a
    dropped holder, so the round is aggregated from the others while `min_nodes` answered.
    That round's noise was sized for every sampled holder, so it counts for less."""
    from flwr.common import parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    from miliao_fl.server_app import ClientSideClipping, _holder_level_epsilon

    strategy = ClientSideClipping(FedAvg(), noise_multiplier=0.0, clipping_norm=10.0, num_sampled_clients=3)
    strategy.min_nodes = 2
    dead = [Exception("node unavailable")]
    params, _ = strategy.aggregate_fit(2, [_fit_res(1.0), _fit_res(3.0)], dead)
    assert parameters_to_ndarrays(params)[0].tolist() == [2.0, 2.0, 2.0]
    assert strategy.aggregate_fit(2, [_fit_res(1.0)], dead) == (None, {})  # fewer than min_nodes: no round

    full = _holder_level_epsilon(1.0, [3, 3], 3, 1e-5)
    assert _holder_level_epsilon(1.0, [3, 2], 3, 1e-5) > full > _holder_level_epsilon(1.0, [3], 3, 1e-5)
    assert _holder_level_epsilon(0.0, [3, 3], 3, 1e-5) is None
