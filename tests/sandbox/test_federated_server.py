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
    """Three holders, through the Grid's push and pull; those in `late` answer after the
    stage's time, so no reply comes back."""

    def __init__(self, late=()):
        self.late, self.asked, self.pending = set(late), [], {}

    def get_node_ids(self):
        return [1, 2, 3]

    def push_messages(self, messages):
        self.asked.append(sorted(m.metadata.dst_node_id for m in messages))
        self.pending.update({m.metadata.message_id: m.metadata.dst_node_id for m in messages})
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, ids):
        return [SimpleNamespace(metadata=SimpleNamespace(src_node_id=self.pending[i], reply_to_message_id=i),
                                has_error=lambda: False) for i in ids if self.pending[i] not in self.late]


def stage(grid, nodes):
    # The stage's time is short here: the late holders' replies never come.
    return grid.send_and_receive([SimpleNamespace(metadata=SimpleNamespace(dst_node_id=n, message_id=f"m{n}"))
                                  for n in nodes], timeout=0.05)


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


class _Grid:
    """Flower's Grid as far as the exchange uses it: replies arrive over several pulls."""

    def __init__(self, answers):
        self.answers, self.pulls = list(answers), 0

    def push_messages(self, messages):
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, ids):
        self.pulls += 1
        batch = self.answers.pop(0) if self.answers else []
        return [r for r in batch if r.metadata.reply_to_message_id in ids]

    def get_node_ids(self):
        return [1, 2, 3]


def _message(mid: str, node: int):
    return SimpleNamespace(metadata=SimpleNamespace(message_id=mid, dst_node_id=node))


def _reply(to: str, node: int):
    return SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=to, src_node_id=node),
                           has_error=lambda: False)


def test_the_serverapps_exchange_collects_every_reply_and_gives_up_at_the_timeout(monkeypatch):
    """It asks the SuperLink for replies every POLL_S through the Grid's own push and pull
    (Flower's send_and_receive asks every 3 s), until all came or the stage's time is up."""
    from miliao_fl import server_app

    monkeypatch.setattr(server_app, "POLL_S", 0.001)
    sent = [_message("a", 1), _message("b", 2), _message("c", 3)]
    grid = _Grid([[_reply("a", 1)], [], [_reply("c", 3), _reply("b", 2)], [_reply("zz", 9)]])
    replies = server_app.SilentHoldersLeft(grid, min_nodes=2, timeout=60).send_and_receive(sent, timeout=60)
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 2, 3] and grid.pulls == 3

    late = _Grid([[_reply("a", 1), _reply("b", 2)]])  # holder 3 never answers
    holders = server_app.SilentHoldersLeft(late, min_nodes=2, timeout=0.05)
    replies = holders.send_and_receive(sent, timeout=0.05)
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 2] and holders.get_node_ids() == [1, 2]
    with pytest.raises(server_app.TooFewHolders, match="only 0 of 2 holders answered"):
        holders.send_and_receive([_message("d", 1), _message("e", 2)], timeout=0.05)


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
