"""What keeps a district node's rounds short, each checked for what it must not change: the
holder's encoded rows are kept between rounds (the same arrays as encoding afresh; a new
partition or another job's setting encodes again), the node's SuperNode polls more often than
Flower's fixed 3 s and nothing else of its clock changes, a missing object is asked for again
after 50 ms (not Flower's 1 s, 2 s, 4 s) and still arrives whole, and the ServerApp's exchange
with the holders returns what Flower's would."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox import tasks

pytestmark = pytest.mark.sandbox

def _rooms(n: int, offset: int = 0) -> pa.Table:
    rng = np.random.default_rng(n + offset)
    return pa.table({
        "unit_id": [f"R{offset + i:09d}" for i in range(n)], "kind": ["room"] * n, "district": ["黄浦区"] * n,
        "neighbourhood": [f"街道{i % 4}" for i in range(n)], "floor": rng.integers(1, 30, n).tolist(),
        "area_m2": rng.uniform(8, 60, n).tolist(), "build_year": rng.integers(1950, 2024, n).tolist(),
        "room_use": [["residential", "office", "retail"][i % 3] for i in range(n)],
        "monthly_rent": rng.uniform(1000, 9000, n).tolist()})


def _same(a: tasks.Arrays, b: tasks.Arrays) -> bool:
    return np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and list(a.district) == list(b.district)


def test_a_holders_encoding_is_kept_between_rounds_and_redone_when_its_rows_or_the_setting_change(tmp_path):
    task = tasks.task_named("room-use")
    folder = tmp_path / "partitions" / "district-rooms"
    folder.mkdir(parents=True)
    pq.write_table(_rooms(400), folder / tasks.PARTITION_FILE)
    vocab = ["街道0", "街道1", "街道2", "街道3"]

    fresh = tasks.split(tasks.read_partition(folder), task, vocab, salt="s1")
    first = tasks.partition_split(folder, task, vocab, salt="s1")
    kept = sorted(folder.glob("encoded-*.npz"))
    assert len(kept) == 1 and _same(first[0], fresh[0]) and _same(first[1], fresh[1])
    assert len(first[0]) + len(first[1]) == 400 and len(first[1]) > 0
    stamp = kept[0].stat().st_mtime_ns
    again = tasks.partition_split(folder, task, vocab, salt="s1")  # the next round: read back, not encoded
    assert kept[0].stat().st_mtime_ns == stamp and _same(again[0], fresh[0]) and _same(again[1], fresh[1])

    other = tasks.partition_split(folder, task, vocab, salt="s2")  # another job's held-out rooms
    assert _same(other[1], tasks.split(tasks.read_partition(folder), task, vocab, salt="s2")[1])
    assert len(list(folder.glob("encoded-*.npz"))) == 1 and not kept[0].exists()

    pq.write_table(_rooms(300, offset=1000), folder / tasks.PARTITION_FILE)  # the district re-ingested
    os.utime(folder / tasks.PARTITION_FILE, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    changed = tasks.partition_split(folder, task, vocab, salt="s2")
    assert len(changed[0]) + len(changed[1]) == 300
    assert not list(folder.glob("*.part"))


def test_the_nodes_supernode_polls_the_superlink_often_during_a_run_and_seldom_when_idle(monkeypatch):
    from sandbox.federated import supernode

    waits, now = [], [1000.0]
    monkeypatch.setattr(supernode.time, "sleep", waits.append)
    monkeypatch.setattr(supernode.time, "monotonic", lambda: now[0])
    clock = supernode.CappedClock()
    clock.sleep(3)  # Flower's wait after an empty pull from the SuperLink: the node is idle
    clock.sleep(0.5)  # Flower's look at the node's own state for a reply: it answers a message
    now[0] += 1
    clock.sleep(3)  # the next stage of the run is near
    now[0] += supernode.IDLE_AFTER_S
    clock.sleep(3)  # nothing answered for IDLE_AFTER_S: idle again
    clock.sleep(0.01)
    assert waits == [supernode.IDLE_POLL_S, supernode.LOCAL_POLL_S, supernode.POLL_S, supernode.IDLE_POLL_S, 0.01]
    assert (supernode.POLL_S, supernode.IDLE_POLL_S, supernode.LOCAL_POLL_S) == (0.2, 1.0, 0.05)
    assert clock.time is time.time


class _Unavailable:
    """The objects of one record, each of which the other side has not stored yet the first
    `misses` times it is asked for."""

    def __init__(self, record, misses: int):
        from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

        self.contents = {oid: obj.deflate() for oid, obj in get_all_nested_objects(record).items()}
        self.misses, self.asked = misses, 0

    def __call__(self, object_id: str) -> bytes:
        from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

        self.asked += 1
        if self.asked <= self.misses:
            raise ObjectUnavailableError(object_id)
        return self.contents[object_id]


def _recorded_waits(monkeypatch) -> list:
    """Flower's pulls wait between tries on a threading.Event: record the waits instead."""
    import threading
    from types import SimpleNamespace

    from flwr.supercore.inflatable import inflatable_utils

    waits = []

    class Recording(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return False

    monkeypatch.setattr(inflatable_utils, "threading", SimpleNamespace(Event=Recording, Lock=threading.Lock))
    return waits


@pytest.mark.parametrize("reader", ["SUPERNODE", "CLIENTAPP", "SERVERAPP"])
def test_a_missing_object_is_asked_for_again_after_50_ms_and_arrives_whole(monkeypatch, reader):
    import importlib

    from flwr.app import ConfigRecord
    from flwr.supercore.constant import PULL_INITIAL_BACKOFF
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supercore.inflatable.inflatable_object import get_object_tree

    from sandbox.federated import pulls

    module_name, name = getattr(pulls, reader)
    module = importlib.import_module(module_name)
    monkeypatch.setattr(module, name, getattr(module, name))  # put back after the test
    pulls.quicken(getattr(pulls, reader))
    pulls.quicken(getattr(pulls, reader))  # twice: no deeper
    quick = getattr(module, name)
    assert quick.func is getattr(inflatable_utils, name)
    assert quick.keywords == {"initial_backoff": 0.05, "backoff_cap": 0.5}

    waits = _recorded_waits(monkeypatch)
    record = ConfigRecord({"stage": "share-keys", "round": 3})
    flaky = _Unavailable(record, misses=6)
    if name == "pull_objects":
        assert quick([record.object_id], pull_object_fn=flaky) == {record.object_id: flaky.contents[record.object_id]}
    else:  # the ClientApp's: pull the message's tree, then inflate it
        confirmed = []
        assert quick(get_object_tree(record), flaky, confirmed.append, return_type=ConfigRecord) == record
        assert confirmed == [record.object_id]
    assert flaky.asked == 7
    # 50, 100, 200, 400, 500, 500 ms (each ± 20 %), where Flower's own waits 1, 2, 4, 8, 10, 10 s
    assert len(waits) == 6
    for wait, expected in zip(waits, (0.05, 0.1, 0.2, 0.4, 0.5, 0.5)):
        assert expected * 0.8 <= wait <= expected * 1.2
    assert PULL_INITIAL_BACKOFF == 1  # what the quickened pull replaces


def _through_secagg(weights: np.ndarray, rows: int, max_weight: float) -> np.ndarray:
    """What the ServerApp recovers of one holder's weights after SecAgg+'s step at the holder
    (flwr's secaggplus_mod: scale by rows / max_weight, quantize within the clipping range) and
    its undoing at the server (dequantize, divide by the weight), the masks left out (they cancel)."""
    from flwr.common.secure_aggregation.quantization import dequantize, quantize

    target, clipping = 4194304, 16.0  # SecAggPlusWorkflow's quantization range, our clipping range
    q_ratio = round(rows / max_weight * target)
    quantized = quantize([weights * (q_ratio / target)], clipping, target)
    return dequantize(quantized, clipping, target)[0] / (q_ratio / target)


def test_a_holders_weights_pass_secagg_whole_because_the_run_config_bounds_its_rows():
    """Flower's default max_weight is 1,000 rows: a holder of 90,000 had its weights scaled 90
    times before being clipped to ±16, so any weight above 0.18 was cut (the federated model
    plateaued 4 points below centralized DP). The run config now carries the largest partition."""
    from sandbox.federated.run import app_config

    params = {"local_dp": True, "hidden": 8, "rounds": 2, "min_nodes": 2, "epochs": 1, "batch_size": 64,
              "learning_rate": 0.5, "target_epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0, "accountant": "rdp",
              "dp": "client", "secagg": True}
    config = app_config(task="room-use", neighbourhoods=[], holdout_salt="", params=params, clipping_norm=10.0,
                        holder_noise=0.001, secagg_clipping_range=16.0, secagg_timeout=60.0, out=Path("/tmp/x"),
                        max_examples=112_000)
    assert config["secagg-max-weight"] == 112_000
    weights = np.linspace(-1.5, 1.5, 301)
    kept = _through_secagg(weights, 89_703, config["secagg-max-weight"])
    assert np.abs(kept - weights).max() < 1e-4
    cut = _through_secagg(weights, 89_703, 1000.0)
    assert np.abs(cut).max() < 0.2 and np.abs(cut - weights).max() > 1.0
