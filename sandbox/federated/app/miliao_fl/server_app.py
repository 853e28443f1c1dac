"""ServerApp: a server optimizer (Flower's FedAdam by default, or plain FedAvg) wrapped in
Flower's DP strategy wrapper, aggregated under SecAgg+.

Composition, not a new loop: `FedAdam` or `FedAvg` (run config `server-optimizer`, with
`server-learning-rate` η and `server-tau` τ for FedAdam) → `DifferentialPrivacyClientSideFixedClipping` (the
holders clip with `fixedclipping_mod`, the server adds noise to the masked sum) or
`DifferentialPrivacyServerSideFixedClipping` (without SecAgg+, since the server must see
each update to clip it) → `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`.

It writes to the run config's `out-dir`: `progress.jsonl` (a line per round, which the
platform shows live), and at the end `model.pt` and `result.json`.

Each message costs the holders a fresh process, so the held-out metric of round r's global
model comes back with round r + 1's fit (the holders score what they receive before training
on it), and only the last round has an evaluate stage (`FinalEvaluationOnly`).

The server optimizer is post-processing of what the holders send, so the per-record guarantee
(DP-SGD at each holder) holds under either. The holder-level guarantee of the aggregate's own
noise does not survive FedAdam (the wrapper adds its noise after the strategy's step, whose
sensitivity to one holder is no longer the clipping norm over the holders), so it is claimed
for FedAvg only, and a run without DP-SGD at the holders must use FedAvg.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import Context
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
)
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

app = ServerApp()
POLL_S = 0.1  # how often the ServerApp asks the SuperLink for the holders' replies


class SecAggPlusForgettingSilentHolders(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow, except that a holder that did not answer the setup or the
    share-keys stage is forgotten. Such a holder holds none of the others' key shares and none
    of its masks are in the sum, but Flower 1.41 still asks for shares of its key when
    unmasking, and so halts the round (after every other holder trained) instead of finishing
    it with the holders that are left."""

    def setup_stage(self, grid, context, state) -> bool:
        done = super().setup_stage(grid, context, state)
        state.sampled_node_ids = set(state.active_node_ids)
        return done

    def share_keys_stage(self, grid, context, state) -> bool:
        done = super().share_keys_stage(grid, context, state)
        state.sampled_node_ids = set(state.active_node_ids)
        return done


FAILURE_FILE = "failure.txt"  # in out-dir: why the run gave up, for the platform to show


class TooFewHolders(RuntimeError):
    pass


class SilentHoldersLeft:
    """The Grid, less the holders that failed to answer a message of this run: the SuperLink
    only notices a dead SuperNode when its heartbeats stop, and until then the strategy would
    sample it again every round and wait out the stage timeout for it.

    When fewer than `min_nodes` holders are left, the run stops here with the reason. Without
    this, the next round's sampling waits (a day, Flower's default) for holders that were
    forgotten, and the run hangs until the platform's wall-clock limit.

    `named` (Flower node ids) are the holders the job names: other nodes connected to the
    SuperLink (holders of other datasets) are never sampled."""

    def __init__(self, grid: Grid, *, min_nodes: int, timeout: float, named=None):
        self._grid, self.silent, self.min_nodes, self.timeout = grid, set(), min_nodes, timeout
        self.named = {str(n) for n in named} if named else None

    def get_node_ids(self):
        return [n for n in self._grid.get_node_ids()
                if n not in self.silent and (self.named is None or str(n) in self.named)]

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        replies = self._exchange(messages, timeout)
        answered = {r.metadata.src_node_id for r in replies if not r.has_error()}
        self.silent |= {m.metadata.dst_node_id for m in messages} - answered
        left = len(self.get_node_ids())
        if messages and left < self.min_nodes:
            raise TooFewHolders(
                f"only {len(answered)} of {len(messages)} holders answered within {self.timeout:g} s, and "
                f"{left} are left, fewer than the minimum of {self.min_nodes}")
        return replies

    def _exchange(self, messages, timeout):
        """Flower's `Grid.send_and_receive`, through the Grid's own `push_messages` and
        `pull_messages`, but asking the SuperLink for the replies every `POLL_S` seconds: Flower
        asks every 3 s, which a round of SecAgg+'s four stages pays four times over."""
        waiting = set(self._grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies = []
        while waiting:
            got = list(self._grid.pull_messages(waiting))
            replies += got
            waiting -= {r.metadata.reply_to_message_id for r in got}
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(POLL_S)
        return replies

    def __getattr__(self, name):
        return getattr(self._grid, name)


class DroppedHoldersAreNotFailures:
    """For Flower's DP strategy wrappers, which drop a whole round that has any failure: a
    holder whose SuperNode died answers with an error once the SuperLink notices it gone, and
    one that is merely late does not answer at all. Both are a holder dropped from the round,
    whose update is not in the (SecAgg+-unmasked) sum; the round goes on with the others as
    long as `min_nodes` answered. The aggregate's noise was sized for every sampled holder, so
    the holder-level guarantee of such a round is weaker: `_holder_level_epsilon` counts each
    round's noise over the holders that were in it."""

    min_nodes: int = 1

    def aggregate_fit(self, server_round, results, failures):
        if failures and len(results) >= self.min_nodes:
            failures = []
        return super().aggregate_fit(server_round, results, failures)


class ClientSideClipping(DroppedHoldersAreNotFailures, DifferentialPrivacyClientSideFixedClipping):
    pass


class ServerSideClipping(DroppedHoldersAreNotFailures, DifferentialPrivacyServerSideFixedClipping):
    pass


class FinalEvaluationOnly:
    """A strategy whose federated evaluation runs after the last round only."""

    def __init__(self, *, rounds: int, **kwargs):
        super().__init__(**kwargs)
        self.rounds = rounds

    def configure_evaluate(self, server_round, parameters, client_manager):
        if server_round < self.rounds:
            return []
        return super().configure_evaluate(server_round, parameters, client_manager)


class FedAvgFinalEvaluation(FinalEvaluationOnly, FedAvg):
    """FedAvg: the new global model is the holders' average."""


class FedAdamFinalEvaluation(FinalEvaluationOnly, FedAdam):
    """FedAdam (Reddi et al., Adaptive Federated Optimization): the holders' average update is
    the pseudo-gradient of an Adam step on the server, with learning rate η (`eta`)."""


SERVER_OPTIMIZERS = ("fedadam", "fedavg")


def build_strategy(rc, initial: list, *, sampled: int, fit_metrics=None, evaluate_metrics=None):
    """The run's strategy from its run config: the server optimizer, wrapped in Flower's DP
    wrapper (client- or server-side fixed clipping). `initial` is the model's arrays."""
    rounds, min_nodes = int(rc["num-server-rounds"]), int(rc["min-nodes"])
    common = {"rounds": rounds, "fraction_fit": 1.0, "fraction_evaluate": 1.0, "min_fit_clients": min_nodes,
              "min_evaluate_clients": min_nodes, "min_available_clients": min_nodes,
              "initial_parameters": ndarrays_to_parameters(initial), "fit_metrics_aggregation_fn": fit_metrics,
              "evaluate_metrics_aggregation_fn": evaluate_metrics}
    optimizer = str(rc.get("server-optimizer", "fedavg"))
    if optimizer not in SERVER_OPTIMIZERS:
        raise ValueError(f"server-optimizer: one of {', '.join(SERVER_OPTIMIZERS)}, got {optimizer!r}")
    if optimizer == "fedadam":
        if not bool(rc["local-dp"]):
            raise ValueError("server-optimizer: fedadam needs DP-SGD at the holders (local-dp): the aggregate's "
                             "noise carries no guarantee after an Adam step")
        base = FedAdamFinalEvaluation(eta=float(rc["server-learning-rate"]), tau=float(rc["server-tau"]), **common)
    else:
        base = FedAvgFinalEvaluation(**common)
    noise, clip = float(rc["noise-multiplier"]), float(rc["clipping-norm"])
    clipping = ServerSideClipping if str(rc["dp"]) == "server" else ClientSideClipping
    strategy = clipping(base, noise_multiplier=noise, clipping_norm=clip, num_sampled_clients=sampled)
    strategy.min_nodes = min_nodes
    return strategy


def _weighted(metrics, key):
    rows = [(n, m[key]) for n, m in metrics if key in m]
    total = sum(n for n, _ in rows)
    return sum(n * float(v) for n, v in rows) / total if total else None


@app.main()
def main(grid: Grid, context: Context) -> None:
    import torch

    from miliao_fl.weights import arrays_of, state_from
    from sandbox import tasks, training
    from sandbox.federated.pulls import SERVERAPP, quicken

    quicken(SERVERAPP)  # the holders' replies: their objects may still be on their way
    rc = context.run_config
    out = Path(str(rc["out-dir"]))
    out.mkdir(parents=True, exist_ok=True)
    progress = open(out / "progress.jsonl", "a", buffering=1)
    started = time.monotonic()
    rounds = int(rc["num-server-rounds"])
    min_nodes = int(rc["min-nodes"])
    task = tasks.task_named(str(rc["task"]))
    metric = task.metric
    history: dict[int, dict] = {}
    nodes_privacy: dict[str, dict] = {}
    holders: dict[str, dict] = {}  # each holder's device and training throughput, its last round's
    aggregated = {"fit": 0}  # rounds aggregated so far

    def log(round_: int, **values) -> None:
        row = history.setdefault(round_, {"round": round_, "step": round_, "of": rounds})
        row.update(values, seconds=round(time.monotonic() - started, 2))
        progress.write(json.dumps(row) + "\n")

    def fit_metrics(metrics):
        received = _weighted(metrics, f"received_{metric}")
        if received is not None:  # the global model of the round before, scored by the holders
            log(aggregated["fit"], **{metric: received, "eval_nodes": len(metrics)})
        for _, m in metrics:
            if "device" in m:
                holders[str(m["node"])] = {"device": str(m["device"]), "rows_per_s": round(float(m["rows_per_s"]), 1)}
            if "epsilon" in m:
                nodes_privacy[str(m["node"])] = {k: m[k] for k in ("epsilon", "noise_multiplier", "sample_rate",
                                                                   "steps")}
        eps = [float(m["epsilon"]) for _, m in metrics if "epsilon" in m]
        values = {"loss": _weighted(metrics, "loss"), "nodes": len(metrics)}
        if eps:
            values["epsilon"] = max(eps)
        aggregated["fit"] += 1
        log(aggregated["fit"], **values)
        return values

    def evaluate_metrics(metrics):
        values = {metric: _weighted(metrics, metric), "eval_nodes": len(metrics)}
        log(aggregated["fit"], **values)
        return values

    model = training.build_model(task, int(rc["features"]), int(rc["hidden"]))
    if str(rc.get("initial-weights", "")):
        model.load_state_dict(torch.load(str(rc["initial-weights"]), weights_only=True, map_location="cpu"))
    named = json.loads(str(rc.get("holder-node-ids") or "[]"))  # the job's holders; [] for every node
    timeout = float(rc["secagg-timeout"])
    grid = SilentHoldersLeft(grid, min_nodes=min_nodes, timeout=timeout, named=named)
    sampled = max(min_nodes, len(list(grid.get_node_ids())))
    strategy = build_strategy(rc, arrays_of(model.state_dict()), sampled=sampled, fit_metrics=fit_metrics,
                              evaluate_metrics=evaluate_metrics)
    noise, clip = float(rc["noise-multiplier"]), float(rc["clipping-norm"])
    optimizer = str(rc.get("server-optimizer", "fedavg"))
    if bool(rc["secagg"]):
        # Every holder gets a share of every other's key (num_shares 1.0: all sampled); any
        # min_nodes of them can unmask a holder that drops out after sharing.
        workflow = DefaultWorkflow(fit_workflow=SecAggPlusForgettingSilentHolders(
            num_shares=1.0, reconstruction_threshold=min_nodes, max_weight=float(rc["secagg-max-weight"]),
            clipping_range=float(rc["secagg-clipping-range"]), timeout=timeout))
    else:
        workflow = DefaultWorkflow()
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds, round_timeout=timeout),
                           strategy=strategy)
    try:
        workflow(grid, legacy)
    except TooFewHolders as exc:
        (out / FAILURE_FILE).write_text(str(exc))
        raise
    if aggregated["fit"] < rounds:
        raise RuntimeError(f"only {aggregated['fit']} of {rounds} rounds aggregated any holder's update: the holders "
                           "failed (their SuperNode logs say why)")
    final = parameters_to_ndarrays(compat.arrayrecord_to_parameters(legacy.state.array_records["parameters"],
                                                                    keep_input=True))
    torch.save(state_from(model, final), out / "model.pt")
    rows = [history[r] for r in sorted(history)]  # round 0: the initial model, scored in round 1
    last = rows[-1] if rows else {}
    holders_per_round = [history[r]["nodes"] for r in sorted(history) if "nodes" in history[r]]
    holder_level = (_holder_level_epsilon(noise, holders_per_round, sampled, float(rc["delta"]))
                    if optimizer == "fedavg" else None)
    record_level = max((p["epsilon"] for p in nodes_privacy.values()), default=None)
    epsilon = min(e for e in (record_level, holder_level) if e is not None) if (
        record_level is not None or holder_level is not None) else None
    privacy = {
        "mechanism": ("Opacus DP-SGD at each holder (per-record DP), " if bool(rc["local-dp"]) else "")
        + f"{'client' if str(rc['dp']) != 'server' else 'server'}-side fixed clipping with Gaussian noise on the "
          f"aggregate (Flower){', SecAgg+' if bool(rc['secagg']) else ''}"
          + (f", FedAdam on the server (η {float(rc['server-learning-rate']):g})" if optimizer == "fedadam" else ""),
        "accountant": str(rc["accountant"]),
        "server_optimizer": optimizer,
        "epsilon": epsilon,
        "delta": float(rc["delta"]),
        "record_level_epsilon": record_level,
        "nodes": nodes_privacy,
        "holder_level": {"noise_multiplier": noise, "clipping_norm": clip, "rounds": rounds,
                         "epsilon": holder_level},
    }
    if nodes_privacy:
        worst = max(nodes_privacy.values(), key=lambda p: p["epsilon"])
        privacy.update(noise_multiplier=worst["noise_multiplier"], sample_rate=worst["sample_rate"],
                       steps=worst["steps"])
    (out / "result.json").write_text(json.dumps({
        "history": rows, "privacy": privacy, "holders": holders,
        "metrics": {metric: last.get(metric), "rounds": len(legacy.history.losses_distributed),
                    "nodes_last_round": last.get("nodes")},
        "seconds": round(time.monotonic() - started, 2),
    }))


def _holder_level_epsilon(noise: float, holders_per_round: list[int], sampled: int, delta: float) -> float | None:
    """The guarantee per holder of the clipped, noised aggregate: every holder takes part in
    every round (sampling rate 1). The noise is sized for `sampled` holders; a round that
    aggregated fewer (one dropped) averaged over fewer, so its noise counts for
    noise × holders / sampled. None when there is no noise or no round."""
    if noise <= 0 or not holders_per_round:
        return None
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise * min(n, sampled) / sampled, 1.0, 1) for n in holders_per_round]
    return float(accountant.get_epsilon(delta))
