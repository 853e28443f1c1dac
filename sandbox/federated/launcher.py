"""A district node's warm ClientApp launcher: Flower's SuperExec, forking each ClientApp from a
process that has already imported what a ClientApp needs.

Under `flower-supernode --isolation subprocess` (Flower's default) every message the SuperLink
sends a node (SecAgg+'s four stages and the fit of every round) starts a fresh `flwr-clientapp`
interpreter, which imports Flower and, for the fit, torch and Opacus before it does a second
of work: seconds per message, most of a short round. A node started by
`python -m sandbox.federated.node start` runs its SuperNode with `--isolation process` and this
launcher beside it instead. The launcher is Flower's own SuperExec loop (`run_superexec`: it
asks the SuperNode's Runtime API for tasks and hands each one to an executor) with one
executor changed: it forks a child from the warm parent, and the child runs Flower's own
`run_clientapp` with the task's token, exactly as `flwr-clientapp` would. Each ClientApp
still runs in a process of its own (its memory, its exit, its Flower context from the
SuperNode), and still installs the FAB and loads the app from it: the parent imports the app's
dependencies only, never the app, so what runs is the code the run was submitted with.

The parent never touches CUDA (a CUDA context does not survive `fork`); a child that trains on
the GPU opens its own.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback

# What every ClientApp imports, loaded once in the parent. The app itself (miliao_fl) is not
# among them: each child loads it from the run's FAB.
WARM_MODULES = ("flwr.supernode.runtime.run_clientapp", "flwr.client.mod", "flwr.clientapp", "numpy", "pyarrow",
                "pyarrow.parquet", "torch", "opacus", "sandbox.tasks", "sandbox.training")


def warm_up() -> None:
    """Import what a ClientApp imports, then train a few steps of DP-SGD on made-up rows, on the
    CPU, for each kind of task: a process's first DP-SGD fit costs seconds more than the next
    (what torch and Opacus set up, and import, on first use), and every child would otherwise
    pay them in every round. Never on the GPU: a CUDA context does not survive `fork`."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    import numpy as np
    import torch

    from sandbox import tasks, training

    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    for task in tasks.TASKS.values():
        x = rng.normal(size=(256, 8)).astype(np.float32)
        y = (rng.integers(0, task.outputs, 256) if task.kind == "classification"
             else rng.normal(size=256).astype(np.float32))
        rows = tasks.Arrays(x, y, np.array(["-"] * 256))
        spec = training.TrainSpec(epochs=1, batch_size=64, private=True, hidden=8)
        training.fit(task, spec, rows, rows, schedule_epochs=2, on=cpu)


class ForkingExecutor:
    """Flower's executor protocol (`flwr.supercore.superexec.executor.types.Executor`): ClientApp
    tasks are forked from this process; any other task type goes to Flower's own subprocess
    executor."""

    def __init__(self) -> None:
        from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor

        self.fallback = SubprocessExecutor()
        self.children: set[int] = set()

    def get_eligible_capacity(self, supported_task_types, **tls):
        return self.fallback.get_eligible_capacity(supported_task_types, **tls)

    def wait_for_capacity(self, task_type=None, **kwargs) -> None:
        self.fallback.wait_for_capacity(task_type, **kwargs)

    def launch(self, spec):
        from flwr.supercore.constant import TaskType
        from flwr.supercore.superexec.executor.types import LaunchResult

        if spec.task_type != TaskType.CLIENT_APP:
            return self.fallback.launch(spec)
        try:
            pid = os.fork()
        except OSError as exc:
            return LaunchResult.failed(f"fork failed: {exc}")
        if pid == 0:  # the child: never returns into the parent's loop
            os._exit(run_child(spec))
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap the children that have exited (Flower's task status comes from the Runtime API,
        not from here)."""
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)

    def close(self) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.fallback.close()


def run_child(spec) -> int:
    """One ClientApp task, in the forked child: Flower's `run_clientapp`, as `flwr-clientapp`
    runs it. Returns the exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        from logging import INFO

        from flwr.common.logger import log
        from flwr.supercore.tls import validate_and_resolve_root_certificates
        from flwr.supernode.runtime.run_clientapp import run_clientapp

        log(INFO, "ClientApp task %s forked from the warm launcher (pid %s)", spec.task_id, os.getpid())

        run_clientapp(runtime_api_address=spec.runtime_api_address, token=spec.token, insecure=spec.insecure,
                      certificates=validate_and_resolve_root_certificates(spec.root_certificates_path, spec.insecure),
                      parent_pid=spec.parent_pid, runtime_dependency_install=spec.runtime_dependency_install)
    except SystemExit as exc:  # run_clientapp ends with flwr_exit
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child's last word, in the node's log
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.federated.launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's Runtime API, host:port")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process (the SuperNode) does")
    parser.add_argument("--ready-fd", type=int, default=None,
                        help="a pipe to write 'ready' to once warm (`node start` waits for it before going online)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    warm_up()
    print(f"ClientApp launcher warm in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    if args.ready_fd is not None:
        try:
            os.write(args.ready_fd, b"ready")
        except BrokenPipeError:  # `node start` was stopped while this warmed up: no SuperNode to serve
            return 0
        os.close(args.ready_fd)
    from flwr.supercore.superexec import run_superexec as superexec

    from .pulls import CLIENTAPP, quicken

    # Before any fork: every ClientApp is started before its message's objects have all
    # reached the SuperNode, and would otherwise wait a second or more for them.
    quicken(CLIENTAPP)

    executor = ForkingExecutor()
    # run_superexec builds its executor through this module-level name; the rest of the loop
    # (polling, launching through its plugin, shutdown) is Flower's.
    superexec.get_executor = lambda *args, **kwargs: executor
    # The Runtime API is plain HTTP on the node's loopback, as in Flower's subprocess mode.
    superexec.run_superexec(runtime_api_address=args.runtime_api_address, insecure=True, parent_pid=args.parent_pid,
                            runtime_dependency_install=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
