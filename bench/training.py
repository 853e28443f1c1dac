"""Training in the privacy sandbox, measured on one generated district:

- non-private centralized training (plain PyTorch), the baseline a startup would otherwise run;
- DP-SGD centralized training (Opacus) at ε = 1, 3 and 8;
- federated DP training on Flower's deployment engine as the platform runs it: a standing
  SuperLink and three district nodes (one per district, each holding its rows in its own folder),
  started once, the job submitted to them; SecAgg+, client-side clipping and Opacus DP-SGD at each
  holder, Flower's FedAdam on the server (the platform's defaults for federated jobs: 10 rounds of
  2 local epochs, server η 0.05);
- the same short job (`--overhead-rounds` rounds of one local epoch) on the standing federation
  and on the per-job deployment it replaced (a SuperLink and three SuperNodes started for the job
  and stopped after): start-up and seconds a round on each.

All of them train the same MLP on the same rooms (the generated district's first three
districts, one per SuperNode) for the same number of passes over the data (epochs centrally,
rounds × local epochs federated) and are scored on the same held-out rooms. `dp_overhead` is
the DP epoch time over the non-private one, timed in short runs of each in turn (medians), so that
the machine's drift over a long run weighs on both alike; `fl_overhead` is the federated job's
wall time (submitted to the standing federation: its one-time start-up, `federation_start_s`, is
not the job's) over the centralized DP run's. With a GPU it also compares a client's throughput on the GPU and the CPU.
The RESULT line gives the federated model's accuracy at ε = 3 (`fed_acc`, the same per-record
guarantee as `central_dp_acc`: DP-SGD, the same δ) and its gap to the non-private one in points.

    python bench/training.py [--rooms 400000] [--hidden 128] [--rounds 10] [--local-epochs 2]
                             [--server-optimizer fedadam] [--server-lr 0.05]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import torch  # noqa: E402

from corpora.generator import generate_district  # noqa: E402
from sandbox import tasks, training  # noqa: E402
from sandbox.federated import run as flower  # noqa: E402


def centralized(task, train, test, *, epochs: int, private: bool, epsilon: float = 3.0, **extra):
    spec = training.TrainSpec(epochs=epochs, private=private, target_epsilon=epsilon, **extra)
    started = time.perf_counter()
    result = training.fit(task, spec, train, test)
    wall = time.perf_counter() - started
    epoch = statistics.median(row["seconds"] for row in result.history)
    return result, wall, epoch


def interleaved_epochs(task, train, test, *, pairs: int, **common) -> tuple[float, float]:
    """Median epoch time of plain and DP-SGD training, short runs of each in turn, so that the
    machine's drift during a long run weighs on both alike; a run's first epoch (warming up)
    is left out."""
    plain, private = [], []
    for _ in range(pairs):
        for times, kwargs in ((plain, {"private": False, **common, "learning_rate": 0.1}),
                              (private, {"private": True, **common})):
            result = training.fit(task, training.TrainSpec(epochs=3, **kwargs), train, test)
            times.extend(row["seconds"] for row in result.history[1:])
    return statistics.median(plain), statistics.median(private)


class StandingFederation:
    """The platform's way: one standing SuperLink and three district nodes, started once, each
    holding its district's rows in its own folder, as `python -m sandbox.federated.node` sets
    them up; jobs are submitted to it (`run.run_standing`) and start nothing."""

    DATASET = "bench-rooms"

    def __init__(self, table, root: Path):
        from sandbox.federated import node
        from sandbox.federated.deploy import SuperLink, free_port

        started = time.monotonic()
        self.root = root
        self.superlink = SuperLink(root / "superlink", free_port())
        self.superlink.start()
        self.client = self.superlink.federation(root / "cli")
        self.partitions = tasks.write_partitions(table, root / "data")
        self.holders, self.procs = {}, []
        for part in self.partitions:
            name = f"district-{part['node']}"
            home = root / name
            node.init(home, name)
            folder = node.partition_dir(home, self.DATASET)
            folder.mkdir(parents=True)
            shutil.move(root / "data" / str(part["node"]) / tasks.PARTITION_FILE, folder / tasks.PARTITION_FILE)
            self.holders[self.client.register(home / "keys" / "node.pub", name)] = name
            self.procs.append(node.spawn(home, self.superlink.address, self.superlink.tls["ca"],
                                         log=home / "node.log", start_new_session=True))
        deadline = time.monotonic() + 300
        while self.client.online_nodes() < len(self.holders):
            if time.monotonic() > deadline:
                raise RuntimeError("the district nodes did not come online")
            time.sleep(0.5)
        self.start_seconds = time.monotonic() - started

    def run(self, config: dict, *, min_nodes: int = 2):
        return flower.run_standing(self.client, self.root / "stage", {**config, "dataset": self.DATASET},
                                   self.holders, min_nodes=min_nodes, wall_seconds=7200)

    def close(self) -> None:
        from sandbox.federated.deploy import stop_process

        for proc in self.procs:
            stop_process(proc)
        self.superlink.stop()


def fl_params(*, rounds: int, local_epochs: int, epsilon: float, batch_size: int, learning_rate: float, hidden: int,
              server_optimizer: str, server_lr: float) -> dict:
    return {"hidden": hidden, "rounds": rounds, "min_nodes": 2, "epochs": local_epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "local_dp": True, "target_epsilon": epsilon, "delta": 1e-5,
            "max_grad_norm": 1.0, "accountant": "rdp", "dp": "client", "secagg": True,
            "server_optimizer": server_optimizer, "server_lr": server_lr}


def fl_config(task, table, params: dict, out: Path) -> dict:
    rooms = table.filter(pc.equal(table["kind"], "room"))
    largest = max(pc.value_counts(rooms["district"]).field("counts").to_pylist())  # the largest holder's rooms
    return flower.app_config(task=task.name, neighbourhoods=tasks.vocabulary(table), holdout_salt="", params=params,
                             clipping_norm=flower.CLIPPING_NORM, holder_noise=flower.HOLDER_NOISE,
                             secagg_clipping_range=flower.SECAGG_CLIPPING_RANGE,
                             secagg_timeout=flower.SECAGG_TIMEOUT_S, out=out, max_examples=largest)


def scored(task, test, out: Path, features: int, hidden: int) -> dict:
    model = training.build_model(task, features, hidden)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    return training.evaluate(task, model, test)


def deployments(task, table, standing: StandingFederation, root: Path, params: dict, *, rounds: int) -> dict:
    """The same short job (`rounds` rounds of one local epoch) on the standing federation and
    on a per-job deployment (a SuperLink and three SuperNodes started for it and stopped
    after, as jobs ran before): start-up and seconds a round on each."""
    config = {**params, "rounds": rounds, "epochs": 1}
    on_standing = standing.run(fl_config(task, table, config, root / "standing"))
    parts = tasks.write_partitions(table, root / "data")
    per_job = flower.run_federation(root / "flower", [root / "data" / str(p["node"]) for p in parts],
                                    fl_config(task, table, config, root / "per-job"), min_nodes=2, wall_seconds=7200)
    return {"standing": on_standing, "per_job": per_job}


def gpu_throughput(task, train, test) -> str:
    if not torch.cuda.is_available():
        return "no GPU here: GPU-versus-CPU client throughput not measured"
    rows = {}
    for dev in ("cpu", "cuda"):
        training.device = (lambda d=dev: torch.device(d))  # noqa: B023 (one device per pass)
        _, _, epoch = centralized(task, train, test, epochs=2, private=True, batch_size=1024)
        rows[dev] = len(train) / epoch
    return (f"client throughput (DP-SGD, batch 1024): GPU {rows['cuda']:,.0f} rows/s, CPU {rows['cpu']:,.0f} "
            f"rows/s, GPU/CPU {rows['cuda'] / rows['cpu']:.1f}x ({torch.cuda.get_device_name()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=400_000, help="rooms to generate; the first three districts are kept")
    parser.add_argument("--rounds", type=int, default=10, help="federated rounds")
    parser.add_argument("--local-epochs", type=int, default=2, help="epochs per round (centrally: rounds × this)")
    parser.add_argument("--server-optimizer", default="fedadam", choices=("fedadam", "fedavg"))
    parser.add_argument("--server-lr", type=float, default=0.05, help="the server optimizer's η (FedAdam)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=7,
                        help="plain and DP epochs timed in turn for dp_overhead (0: not timed)")
    parser.add_argument("--overhead-rounds", type=int, default=2,
                        help="rounds of the short job run on both deployments (standing and per-job; 0: not run)")
    parser.add_argument("--epsilons", default="1,3,8", help="the centralized DP-SGD runs' ε (3 among them)")
    args = parser.parse_args()
    epsilons = sorted({float(e) for e in args.epsilons.split(",")} | {3.0})
    torch.set_num_threads(1)  # as in a jail or a SuperNode here: one thread a trainer

    table = pa.concat_tables(generate_district(seed=args.seed, rooms=args.rooms))
    districts = sorted(set(table["district"].drop_null().to_pylist()))[:3]
    table = table.filter(pc.is_in(table["district"], pa.array(districts)))
    task = tasks.task_named("room-use")
    train, test = tasks.split(table, task, tasks.vocabulary(table))
    print(f"{len(train):,} training rooms, {len(test):,} held out, {len(set(train.district.tolist()))} districts, "
          f"majority-class accuracy {tasks.baseline(task, train, test):.3f}")
    epochs = args.rounds * args.local_epochs
    common = {"batch_size": args.batch_size, "learning_rate": 0.5, "hidden": args.hidden}

    # The federated run first: on a shared machine it is the longest, and its figure the one sought.
    fl = fl_params(rounds=args.rounds, local_epochs=args.local_epochs, epsilon=3.0,
                   server_optimizer=args.server_optimizer, server_lr=args.server_lr, **common)
    root = Path(tempfile.mkdtemp(prefix="miliao-bench-fl-"))
    standing = StandingFederation(table, root / "federation")
    try:
        print(f"standing federation: a SuperLink and {len(standing.holders)} district nodes up in "
              f"{standing.start_seconds:.1f} s (once, not per job)", flush=True)
        run = standing.run(fl_config(task, table, fl, root / "job"))
        fl_metrics = scored(task, test, root / "job", int(train.x.shape[1]), args.hidden)
        fl_eps = run.result["privacy"]["epsilon"]
        print(f"federated ({len(standing.holders)} district nodes, SecAgg+, DP-SGD ε=3 at each holder, {args.rounds} rounds × "
              f"{args.local_epochs} local epochs, {args.server_optimizer}"
              f"{f' η {args.server_lr:g}' if args.server_optimizer == 'fedadam' else ''}): wall "
              f"{run.seconds:.1f} s (submitted in {run.phases['start']:.1f} s), {run.seconds / args.rounds:.1f} s a "
              f"round, accuracy {fl_metrics['accuracy']:.4f}, record-level ε {fl_eps:.3f}, rooms per holder "
              f"{[p['rows'] for p in standing.partitions]}", flush=True)
        ran = deployments(task, table, standing, root / "deployments", fl, rounds=args.overhead_rounds) \
            if args.overhead_rounds else None
    finally:
        standing.close()
        shutil.rmtree(root, ignore_errors=True)
    deployed = f"federation_start_s={standing.start_seconds:.1f} "
    if ran:
        st, pj = ran["standing"], ran["per_job"]
        round_st, round_pj = st.phases["train"] / args.overhead_rounds, pj.phases["train"] / args.overhead_rounds
        print(f"the same {args.overhead_rounds} rounds of 1 local epoch: standing federation {st.seconds:.1f} s "
              f"(submitted in {st.phases['start']:.1f} s, {round_st:.1f} s a round); per-job deployment "
              f"{pj.seconds:.1f} s (start {pj.phases['start']:.1f} s, {round_pj:.1f} s a round, stop "
              f"{pj.phases['stop']:.1f} s)", flush=True)
        deployed += (f"per_job_start_s={pj.phases['start']:.1f} round_s_standing={round_st:.1f} "
                     f"round_s_per_job={round_pj:.1f} ")
    plain, plain_wall, plain_epoch = centralized(task, train, test, epochs=epochs, private=False,
                                                 batch_size=args.batch_size, learning_rate=0.1, hidden=args.hidden)
    print(f"non-private:  epoch {plain_epoch:.2f} s, wall {plain_wall:.1f} s, accuracy "
          f"{plain.metrics['accuracy']:.4f}")
    dp = {}
    for eps in epsilons:
        result, wall, epoch = centralized(task, train, test, epochs=epochs, private=True, epsilon=eps, **common)
        dp[eps] = (result, wall, epoch)
        print(f"DP-SGD ε={eps:g}: epoch {epoch:.2f} s, wall {wall:.1f} s, accuracy {result.metrics['accuracy']:.4f}, "
              f"accountant ε {result.privacy['epsilon']:.3f} (σ {result.privacy['noise_multiplier']:.3f})")
    print(gpu_throughput(task, train, test))

    dp_overhead = "n/a"
    if args.pairs:
        plain_pair, dp_pair = interleaved_epochs(task, train, test, pairs=args.pairs, **common)
        dp_overhead = f"{dp_pair / plain_pair:.2f}"
        print(f"epochs in turn ({args.pairs} pairs): plain {plain_pair:.2f} s, DP-SGD {dp_pair:.2f} s (median); "
              f"in the long runs: plain {plain_epoch:.2f} s, DP-SGD "
              f"{statistics.median(epoch for _, _, epoch in dp.values()):.2f} s")
    dp3_wall = dp[3.0][1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: this process {peak:.0f} MiB, largest child process {children:.0f} MiB")
    nonprivate, fed = plain.metrics["accuracy"], fl_metrics["accuracy"]
    print(f"RESULT fed_acc={fed:.4f} central_dp_acc={dp[3.0][0].metrics['accuracy']:.4f} "
          f"nonprivate_acc={nonprivate:.4f} gap_pts={100 * (nonprivate - fed):.1f} epsilon={fl_eps:.3f} "
          f"fed_wall_s={run.seconds:.1f} central_dp_wall_s={dp3_wall:.1f} fl_overhead={run.seconds / dp3_wall:.2f} "
          f"{deployed}dp_overhead={dp_overhead} "
          + "".join(f"acc_eps{e:g}={r.metrics['accuracy']:.4f} " for e, (r, _, _) in dp.items() if e != 3.0)
          + f"peak_mb={peak:.0f} child_peak_mb={children:.0f}")


if __name__ == "__main__":
    main()
