"""Training in the privacy sandbox, measured on one generated district:

- non-private centralized training (plain PyTorch), the baseline a startup would otherwise run;
- DP-SGD centralized training (Opacus) at ε = 1, 3 and 8;
- federated DP training on Flower's deployment engine: a SuperLink and three SuperNodes as
  processes (one per district), SecAgg+, client-side clipping and Opacus DP-SGD at each holder,
  Flower's FedAdam on the server (the platform's defaults for federated jobs: 10 rounds of 2 local
  epochs, server η 0.05).

All of them train the same MLP on the same rooms (the generated district's first three
districts, one per SuperNode) for the same number of passes over the data (epochs centrally,
rounds × local epochs federated) and are scored on the same held-out rooms. `dp_overhead` is
the DP epoch time over the non-private one, timed in short runs of each in turn (medians), so that
the machine's drift over a long run weighs on both alike; `fl_overhead` is the federated run's
wall time (processes started and stopped included) over the centralized DP run's. With a GPU it also compares a client's throughput on the GPU and the CPU.
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


def federated(task, table, train, test, *, rounds: int, local_epochs: int, epsilon: float, batch_size: int,
              learning_rate: float, hidden: int, server_optimizer: str, server_lr: float):
    root = Path(tempfile.mkdtemp(prefix="miliao-bench-fl-"))
    try:
        features = int(train.x.shape[1])
        partitions = tasks.write_partitions(table, root / "data")
        params = {"hidden": hidden, "rounds": rounds, "min_nodes": 2, "epochs": local_epochs, "batch_size": batch_size,
                  "learning_rate": learning_rate, "local_dp": True, "target_epsilon": epsilon, "delta": 1e-5,
                  "max_grad_norm": 1.0, "accountant": "rdp", "dp": "client", "secagg": True,
                  "server_optimizer": server_optimizer, "server_lr": server_lr}
        config = flower.app_config(task=task.name, neighbourhoods=tasks.vocabulary(table), holdout_salt="",
                                   params=params,
                                   clipping_norm=flower.CLIPPING_NORM, holder_noise=flower.HOLDER_NOISE,
                                   secagg_clipping_range=flower.SECAGG_CLIPPING_RANGE,
                                   secagg_timeout=flower.SECAGG_TIMEOUT_S, out=root / "work")
        run = flower.run_federation(root / "flower", [root / "data" / str(p["node"]) for p in partitions], config,
                             min_nodes=2, wall_seconds=3600)
        state = torch.load(root / "work" / "model.pt", weights_only=True)
        model = training.build_model(task, features, hidden)
        model.load_state_dict(state)
        return run, training.evaluate(task, model, test), partitions
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
    run, fl_metrics, partitions = federated(task, table, train, test, rounds=args.rounds, local_epochs=args.local_epochs,
                                            epsilon=3.0, server_optimizer=args.server_optimizer,
                                            server_lr=args.server_lr, **common)
    fl_eps = run.result["privacy"]["epsilon"]
    print(f"federated (3 SuperNodes, SecAgg+, DP-SGD ε=3 at each holder, {args.rounds} rounds × "
          f"{args.local_epochs} local epochs, {args.server_optimizer} η {args.server_lr:g}): wall {run.seconds:.1f} s "
          f"(start {run.phases['start']:.1f} s, train {run.phases['train']:.1f} s, stop {run.phases['stop']:.1f} s), "
          f"accuracy {fl_metrics['accuracy']:.4f}, record-level ε {fl_eps:.3f}, "
          f"rooms per holder {[p['rows'] for p in partitions]}", flush=True)
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
          f"dp_overhead={dp_overhead} "
          + "".join(f"acc_eps{e:g}={r.metrics['accuracy']:.4f} " for e, (r, _, _) in dp.items() if e != 3.0)
          + f"peak_mb={peak:.0f} child_peak_mb={children:.0f}")


if __name__ == "__main__":
    main()
