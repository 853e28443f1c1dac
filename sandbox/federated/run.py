"""One federated training run, in plain Python: submit the Flower App with the run's config
to a SuperLink, follow its rounds, stop it when too few holders are left or the wall clock
runs out.

`run_standing` submits to the platform's standing SuperLink, whose district nodes hold their
own partitions (the platform's job runner, platform/jobs/federated.py). `run_federation`
starts a SuperLink and a SuperNode per partition folder for the one run and takes them down
after (a LocalDeployment: bench/training.py's per-job path).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .deploy import Federation, FederationError, LocalDeployment, RunStatus

POLL_S = 1.0  # how often a job's progress file is read
# How often the SuperLink is asked for the run's status and its nodes (`flwr ls`, `flwr
# supernode ls`: each a Python process of Flower's CLI, most of a second of CPU, taken from the
# holders where they train on the same machine): every CHECK_S while the run shows no progress,
# and every PROGRESSING_CHECK_S while its rounds keep coming (the holders are answering, and the
# ServerApp stops the run itself when too few are left). Between two asks, the ServerApp's
# result or failure file appearing ends the wait early.
CHECK_S = 10.0
PROGRESSING_CHECK_S = 60.0
ENDING_POLL_S = 0.25  # once the ServerApp's result is written, until Flower has finished the run
# Defaults of the platform's FLOWER_* settings. The clipping norm bounds each holder's update
# (a few local epochs move the model well past 2), and with DP-SGD at every holder the
# aggregate's own noise is small: the per-record guarantee is the holders'. (At 0.01 its
# standard deviation, 0.01 × 10 / 3 holders a weight, was half a round's mean update and
# cost the final model accuracy for a holder-level ε far too large to mean anything.)
CLIPPING_NORM = 10.0
HOLDER_NOISE = 0.001
SECAGG_CLIPPING_RANGE = 16.0
SECAGG_TIMEOUT_S = 300.0
# Where the ServerApp writes why it gave up (miliao_fl.server_app.FAILURE_FILE, in out-dir):
# Flower's run status says only "failed".
FAILURE_FILE = "failure.txt"

# FedAdam's τ (its adaptivity: the Adam denominator's floor), as in Reddi et al.'s experiments.
# The server optimizer and its learning rate η are job params (server_optimizer, server_lr);
# a job whose params predate them ran FedAvg.
SERVER_TAU = 1e-3

# Called with the rounds logged so far (the ServerApp's progress.jsonl), after each poll.
RoundReporter = Callable[[list[dict]], None]


class FederationFailed(RuntimeError):
    """The run ended without a model. `started` says whether the run was submitted, that
    is whether any holder may have trained on its data (and so spent privacy)."""

    def __init__(self, message: str, *, started: bool, outcome: dict | None = None, log: str = ""):
        super().__init__(message)
        self.started, self.outcome, self.log = started, outcome or {}, log


@dataclass
class FederatedRun:
    result: dict  # the ServerApp's result.json: history, privacy, metrics, seconds
    run_id: int
    nodes_started: int
    nodes_alive: list[str]
    log: str
    seconds: float  # wall time from the first process started to the federation taken down
    phases: dict = field(default_factory=dict)  # seconds spent starting, training and stopping

    @property
    def nodes_dropped(self) -> int:
        return self.nodes_started - len(self.nodes_alive)


def app_config(*, task: str, neighbourhoods: list[str], holdout_salt: str, params: dict, clipping_norm: float,
               holder_noise: float, secagg_clipping_range: float, secagg_timeout: float, out: Path,
               max_examples: int, initial_weights: str = "", dataset: str = "") -> dict:
    """The Flower App's run config for a job's params (sandbox.training.TrainSpec fields plus
    rounds, min_nodes, secagg, dp, local_dp, server_optimizer and server_lr).

    With DP-SGD at each holder, `holder_noise` is the aggregate's extra noise; without it the
    aggregate's noise alone must carry the target ε for each holder (and so each record), so it
    is derived from the target, every holder taking part in every round. `neighbourhoods` (the
    one-hot vocabulary) and `holdout_salt` make every holder encode and hold out alike;
    `dataset` (a slug) names the partition a district node reads (its partitions/<dataset>);
    `initial_weights` (a state_dict file the ServerApp reads) starts from a shared model.

    `max_examples` bounds the rows any holder trains on (the largest partition's published
    count): SecAgg+ weights each holder's masked parameters by its rows over this bound, and
    a holder above it has its parameters scaled up past `secagg_clipping_range` and clipped."""
    from sandbox import tasks

    p = params
    if not p["local_dp"]:
        from opacus.accountants.utils import get_noise_multiplier

        holder_noise = get_noise_multiplier(target_epsilon=p["target_epsilon"], target_delta=p["delta"],
                                            sample_rate=1.0, steps=p["rounds"], accountant="rdp")
    return {
        "task": task, "neighbourhoods": json.dumps(neighbourhoods, ensure_ascii=False), "holdout-salt": holdout_salt,
        "features": tasks.n_features(neighbourhoods), "hidden": p["hidden"], "num-server-rounds": p["rounds"],
        "min-nodes": p["min_nodes"], "local-epochs": p["epochs"], "batch-size": p["batch_size"],
        "learning-rate": p["learning_rate"], "local-dp": p["local_dp"], "target-epsilon": p["target_epsilon"],
        "delta": p["delta"], "max-grad-norm": p["max_grad_norm"], "accountant": p["accountant"], "dp": p["dp"],
        "clipping-norm": clipping_norm, "noise-multiplier": holder_noise, "secagg": p["secagg"],
        "secagg-clipping-range": secagg_clipping_range, "secagg-timeout": secagg_timeout, "out-dir": str(out),
        "initial-weights": initial_weights, "dataset": dataset, "secagg-max-weight": float(max(1, max_examples)),
        "server-optimizer": p.get("server_optimizer", "fedavg"), "server-learning-rate": p.get("server_lr", 1.0),
        "server-tau": SERVER_TAU,
    }


def read_rounds(path: Path) -> list[dict]:
    """The progress lines written so far, the latest line of each step (a round's line is
    written again as its metrics come in); a line being written is left for the next read."""
    if not path.exists():
        return []
    rows: dict = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        rows[row["step"]] = row
    return [rows[step] for step in sorted(rows)]


def run_federation(root: Path, partitions: list[Path], config: dict, *, min_nodes: int, wall_seconds: float,
                   on_rounds: RoundReporter | None = None, threads_per_node: int = 1) -> FederatedRun:
    """Run the Flower App with `config` over one SuperNode per partition folder."""
    out = Path(config["out-dir"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    federation = LocalDeployment(root, threads_per_node=threads_per_node)
    run_id = None
    phases = {}
    try:
        try:
            federation.start_superlink()
            for n, folder in enumerate(partitions):
                federation.start_node(f"holder-{n}", folder)
            federation.wait_nodes(len(partitions))
            run_id = federation.submit(config)
        except FederationError as exc:
            raise FederationFailed(f"the federation could not start: {exc}", started=False,
                                   log=federation.log_tail("superlink")) from None
        phases["start"] = time.monotonic() - started
        alive, status = _follow(federation.federation, run_id, out, len(partitions), min_nodes=min_nodes,
                                deadline=started + wall_seconds, on_rounds=on_rounds,
                                nodes_alive=federation.nodes_alive, superlink_alive=federation.superlink_alive,
                                superlink_log=lambda: federation.log_tail("superlink"))
        log = _completed(federation.federation, run_id, out, status)
        phases["train"] = time.monotonic() - started - phases["start"]
    finally:
        stopping = time.monotonic()
        federation.close()
        phases["stop"] = time.monotonic() - stopping
    return FederatedRun(result=json.loads((out / "result.json").read_text()), run_id=run_id,
                        nodes_started=len(partitions), nodes_alive=alive, log=log,
                        seconds=time.monotonic() - started, phases=phases)


def run_standing(federation: Federation, stage: Path, config: dict, holders: dict[str, str], *, min_nodes: int,
                 wall_seconds: float, on_rounds: RoundReporter | None = None) -> FederatedRun:
    """Run the Flower App with `config` on the standing SuperLink, over the district nodes
    `holders` (Flower node id -> holder name), which read their own partitions. Refused
    before submission (started=False) when fewer than `min_nodes` of them are online."""
    out = Path(config["out-dir"])
    out.mkdir(parents=True, exist_ok=True)
    stage.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def online() -> list[str]:
        return [holders[n["node-id"]] for n in federation.supernodes()
                if n.get("status") == "online" and n.get("node-id") in holders]

    try:
        here = online()
        if len(here) < min_nodes:
            raise FederationFailed(f"only {len(here)} of the {len(holders)} holders named are online, fewer than the "
                                   f"minimum of {min_nodes}: the job was not submitted", started=False,
                                   outcome={"nodes_online": sorted(here)})
        # The ServerApp samples only these nodes: a node online for another dataset is left out.
        run_id = federation.submit({**config, "holder-node-ids": json.dumps(sorted(holders))}, stage)
    except FederationError as exc:
        raise FederationFailed(f"the SuperLink could not be reached: {exc}", started=False) from None
    phases = {"start": time.monotonic() - started}

    def alive() -> list[str]:
        try:
            return online()
        except FederationError:
            return []

    nodes_alive, status = _follow(federation, run_id, out, len(holders), min_nodes=min_nodes,
                                  deadline=started + wall_seconds, on_rounds=on_rounds, nodes_alive=alive,
                                  superlink_alive=lambda wait=0: _healthy(federation, wait), superlink_log=lambda: "")
    log = _completed(federation, run_id, out, status)
    phases["train"] = time.monotonic() - started - phases["start"]
    return FederatedRun(result=json.loads((out / "result.json").read_text()), run_id=run_id,
                        nodes_started=len(holders), nodes_alive=nodes_alive, log=log,
                        seconds=time.monotonic() - started, phases=phases)


def _completed(federation: Federation, run_id: int, out: Path, status: RunStatus) -> str:
    """The ended run's log; FederationFailed with the ServerApp's reason (or Flower's) unless it
    completed (`status`, as `_follow` last saw it) and wrote its result."""
    log = federation.run_log(run_id)
    if status.sub_status != "completed" or not (out / "result.json").exists():
        if (out / FAILURE_FILE).exists():  # the ServerApp's own reason leads: it is what the job shows
            raise FederationFailed((out / FAILURE_FILE).read_text()[:500], started=True,
                                   outcome={"run_id": str(run_id)}, log=log)
        raise FederationFailed(f"the federated run ended {status.sub_status or status.status}: {status.details}",
                               started=True, outcome={"run_id": str(run_id)}, log=log)
    return log


def _healthy(federation: Federation, wait: float = 0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if federation.healthy():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _follow(federation: Federation, run_id: int, out: Path, holders: int, *, min_nodes: int, deadline: float,
            on_rounds: RoundReporter | None, nodes_alive: Callable[[], list[str]],
            superlink_alive: Callable[..., bool], superlink_log: Callable[[], str]) -> tuple[list[str], RunStatus]:
    """Poll until the run finishes; return the holders still online at the end, and the run's
    finished status."""
    seen, ended = 0, False
    checked = progressed = time.monotonic()
    while True:
        time.sleep(ENDING_POLL_S if ended else POLL_S)
        rounds = read_rounds(out / "progress.jsonl")
        if len(rounds) != seen:
            if on_rounds is not None:
                on_rounds(rounds)
            seen, progressed = len(rounds), time.monotonic()
        ended = (out / "result.json").exists() or (out / FAILURE_FILE).exists()
        every = CHECK_S if time.monotonic() - progressed >= CHECK_S else PROGRESSING_CHECK_S
        if not ended and time.monotonic() - checked < every and time.monotonic() < deadline:
            continue
        checked = time.monotonic()
        try:
            status = None if not superlink_alive() else federation.status(run_id)
        except FederationError as exc:
            if superlink_alive(wait=5):
                raise FederationFailed(f"the SuperLink stopped answering: {exc}", started=True,
                                       outcome={"run_id": str(run_id)}, log=superlink_log()) from None
            status = None
        if status is None:
            raise FederationFailed(
                "the SuperLink stopped during the run; the run cannot go on without it and was not restarted, "
                "so holders that trained in it may have spent privacy",
                started=True, outcome={"run_id": str(run_id), "superlink": "stopped"}, log=superlink_log())
        if status.finished:
            return nodes_alive(), status
        if ended and time.monotonic() <= deadline:
            continue  # the ServerApp has written its result or its reason: Flower is ending the run
        alive = nodes_alive()
        if len(alive) < min_nodes:
            federation.stop(run_id)
            raise FederationFailed(
                f"only {len(alive)} of {holders} holders are still online, fewer than the minimum of "
                f"{min_nodes}: the run was stopped", started=True,
                outcome={"nodes_started": holders, "nodes_alive": len(alive), "run_id": str(run_id)},
                log=federation.run_log(run_id))
        if time.monotonic() > deadline:
            federation.stop(run_id)
            raise FederationFailed("stopped at the wall-clock limit", started=True, outcome={"run_id": str(run_id)},
                                   log=federation.run_log(run_id))
