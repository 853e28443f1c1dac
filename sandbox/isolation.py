"""Run a job script isolated from the platform: no network and no sockets, read-only data, its
own folder capped in bytes and files, limits on CPU time, memory, processes and wall-clock
time, and a clear reason when it stops.

The boundary is the kernel's, not Python's: user, mount and network namespaces (`unshare`), a
PID namespace so nothing the job starts outlives it, a size-limited tmpfs for its folder,
resource limits, Landlock (through landlockpy) for the filesystem, and a seccomp filter
(through pyseccomp) against sockets and the kernel's other ways out. `sandbox/jail.py` sets
these up inside; this module starts it, enforces the wall clock and reads back how the job
ended. The job's environment holds nothing of the platform's: no database URL, no keys.

The kernel does not apply the process limit (RLIMIT_NPROC) to root, so when the platform
runs as root (a worker in a container, say) the job joins a pids cgroup of its own instead,
and the job is refused if no such cgroup can be made.

If the kernel cannot give this isolation, or any step of setting it up fails, `run_isolated`
refuses to run the job (`IsolationUnavailable`) rather than run it without.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JAIL = Path(__file__).resolve().parent / "jail.py"
EXIT_NETWORK, EXIT_FILESYSTEM, EXIT_MEMORY, EXIT_PROCESSES, EXIT_SETUP, EXIT_DISK, EXIT_COLLECT = \
    86, 87, 88, 89, 90, 91, 92
PIDS_CGROUPS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))  # cgroup v1, then v2
LOG_TAIL = 8000  # characters of the job's output kept with its outcome
# Root of its own user namespace, so that process 1 may mount the job's folder; the job
# itself then drops every capability.
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork"]

REASONS = {
    EXIT_NETWORK: "network",
    EXIT_FILESYSTEM: "filesystem",
    EXIT_MEMORY: "memory",
    EXIT_PROCESSES: "processes",
    EXIT_SETUP: "isolation",
    EXIT_DISK: "disk",
    EXIT_COLLECT: "collect",
}


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it


def _die_with_worker(parent: int) -> Callable[[], None]:
    """Run in the jail's first process before exec: the kernel kills it (and, through
    `unshare --kill-child`, the job) when the worker that started it dies, so a worker killed
    mid-job leaves no job running on."""

    def arm() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the line above
            os._exit(1)

    return arm


class IsolationUnavailable(RuntimeError):
    """The kernel does not allow the namespaces or Landlock the jail needs."""


@dataclass
class Limits:
    """A job's resources. The bounds here are what the jail can enforce at all; each
    dataset's sandbox policy (its owner's) sets the maxima a job on it may ask for."""

    cpu_seconds: int = 900
    memory_mb: int = 4096
    wall_seconds: int = 1200
    processes: int = 64  # processes and threads together
    output_mb: int = 256  # any one file
    threads: int = 2  # torch / OpenMP threads
    disk_mb: int = 512  # the work folder in total (a tmpfs: it is held in memory while the job runs)
    files: int = 10_000  # files and folders in the work folder

    BOUNDS = {"cpu_seconds": (1, 86_400), "memory_mb": (256, 262_144), "wall_seconds": (1, 86_400),
              "processes": (8, 4096), "output_mb": (1, 65_536), "threads": (1, 256), "disk_mb": (1, 65_536),
              "files": (16, 1_000_000)}

    def __post_init__(self) -> None:
        for name, (low, high) in self.BOUNDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"limits.{name}: must be a whole number from {low} to {high}, got {value!r}")
        if self.output_mb > self.disk_mb:
            self.output_mb = self.disk_mb  # no file is larger than the folder that holds it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    ok: bool
    reason: str  # "" when ok; else cpu_time, memory, wall_clock, processes, network, filesystem, error, ...
    message: str
    exit_code: int | None
    seconds: float
    log: str  # the tail of the job's stdout and stderr

    def to_dict(self) -> dict:
        return asdict(self)


def readable_roots() -> list[str]:
    """What every job may read and execute: the interpreter, its libraries, the system's
    shared libraries and CPU topology, and this package's code."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"],
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], os.path.realpath(sys.executable),
             "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo", "/etc/ld.so.cache",
             "/etc/localtime", "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/meminfo",
             "/dev/urandom", str(REPO / "sandbox")}
    return sorted(p for p in paths if p and os.path.exists(p))


def check_available() -> None:
    if shutil.which("unshare") is None:
        raise IsolationUnavailable("the unshare program (util-linux) is not installed")
    probe = subprocess.run([*UNSHARE, "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise IsolationUnavailable(f"user, network and PID namespaces are not allowed here: {probe.stderr.strip()}")
    from landlockpy import abi_version

    if abi_version() < 6:
        raise IsolationUnavailable(f"Landlock ABI {abi_version()} is too old (scoping abstract sockets and "
                                   "signals needs 6 or later)")
    try:
        import pyseccomp

        pyseccomp.get_api()
    except Exception as exc:  # libseccomp2 missing or unusable
        raise IsolationUnavailable(f"seccomp filters cannot be built here (libseccomp2): {exc}") from None


def run_isolated(
    script: Path, *, data: Path, work: Path, limits: Limits, args: list[str] | None = None,
    pythonpath: list[str] | None = None, log_name: str = "job.log", watch: Callable[[], None] | None = None,
    every: float = 1.0, env: dict[str, str] | None = None, live: list[str] | None = None,
) -> Outcome:
    """Run `script` with `data` readable and `work` writable, under `limits`, calling
    `watch()` about every `every` seconds while it runs (to show progress). The job writes in
    a tmpfs over `work`, copied back to disk when it ends; the files named in `live` (plain
    names in `work`) are copied while it runs too, for `watch` to read. `env` adds variables
    the job may see (never the platform's own). Raises IsolationUnavailable when the jail
    cannot be set up (the job's code has not run)."""
    check_available()
    script, data, work = Path(script).resolve(), Path(data).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    control = work.parent / f".{work.name}.jail"  # outside what the job may read or write
    lib = control / "lib"  # the job imports `sandbox` from here, and sees nothing else of the repo
    lib.mkdir(parents=True, exist_ok=True)
    if not (lib / "sandbox").exists():
        (lib / "sandbox").symlink_to(REPO / "sandbox")
    spec = {"script": str(script), "args": args or [], "data": str(data), "work": str(work),
            "readable": readable_roots() + [str(script.parent)], "pythonpath": [str(lib), *(pythonpath or [])],
            "limits": limits.to_dict(), "live": list(live or [])}
    (control / "spec.json").write_text(json.dumps(spec))
    log_path = control / log_name
    threads = str(limits.threads)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8", "TMPDIR": str(work), "USER": "job",
           "LOGNAME": "job",
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    argv = [*UNSHARE, "--kill-child", sys.executable, "-I", str(JAIL), str(control / "spec.json")]
    cgroup = _pids_cgroup(work.name, limits.processes) if os.geteuid() == 0 else None
    if cgroup is not None:  # join it before anything forks, then become the jail
        argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *argv]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(work),
            start_new_session=True, preexec_fn=_die_with_worker(os.getpid()),
        )
        deadline = started + limits.wall_seconds
        code, timed_out = None, False
        while code is None:
            try:
                code = proc.wait(timeout=max(0.01, min(every, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    code, timed_out = proc.wait(), True
                elif watch is not None:
                    watch()
    seconds = time.monotonic() - started
    if cgroup is not None:
        _remove_cgroup(cgroup)
    text = log_path.read_bytes()[-LOG_TAIL * 4:].decode("utf-8", "replace")[-LOG_TAIL:]
    outcome = _outcome(code, timed_out, seconds, text, limits)
    if outcome.reason == "isolation":
        raise IsolationUnavailable(outcome.message)
    return outcome


def _pids_cgroup(name: str, processes: int) -> Path:
    """A fresh pids cgroup capped at `processes`, for a job started by root."""
    for base in PIDS_CGROUPS:
        v1 = base.name == "pids" and base.is_dir()
        v2 = (base / "cgroup.subtree_control").exists() and "pids" in (base / "cgroup.subtree_control").read_text()
        if v1 or v2:
            group = base / "miliao-jobs" / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
            try:
                group.mkdir(parents=True)
                (group / "pids.max").write_text(str(processes))
                return group
            except OSError:
                continue
    raise IsolationUnavailable(
        "the platform runs as root, for which the kernel ignores the process limit, and no pids cgroup "
        "could be created under /sys/fs/cgroup: run the worker as an unprivileged user, or give it a pids cgroup")


def _remove_cgroup(group: Path) -> None:
    for _ in range(50):  # the namespace's processes take a moment to be reaped
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _outcome(code: int, timed_out: bool, seconds: float, log: str, limits: Limits) -> Outcome:
    jail_says = [line.split("MILIAO-JAIL: ", 1)[1] for line in log.splitlines() if "MILIAO-JAIL: " in line]
    said = jail_says[-1] if jail_says else ""
    if timed_out:
        return Outcome(False, "wall_clock", f"stopped at the wall-clock limit ({limits.wall_seconds} s)", None,
                       seconds, log)
    if code == 0:
        return Outcome(True, "", "finished", 0, seconds, log)
    if code in REASONS:
        return Outcome(False, REASONS[code], said or f"stopped: {REASONS[code]}", code, seconds, log)
    signum = code - 128 if code > 128 else (-code if code < 0 else 0)
    if "CPU time limit" in said or signum == signal.SIGXCPU:
        return Outcome(False, "cpu_time", said or f"CPU time limit reached ({limits.cpu_seconds} s)", code, seconds,
                       log)
    if signum:
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        return Outcome(False, "killed", f"killed by {name}", code, seconds, log)
    last = [line for line in log.strip().splitlines() if line.strip()]
    return Outcome(False, "error", f"the job exited with status {code}: {last[-1] if last else 'no output'}",
                   code, seconds, log)
