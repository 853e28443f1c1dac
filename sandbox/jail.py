"""Inside the isolation boundary: run one job script under limits, then report how it ended.

`sandbox.isolation` starts this file as `unshare --user --net --pid --fork -- python -I
sandbox/jail.py SPEC`, so it is process 1 of a fresh PID namespace with no network but a
down loopback. It forks the job and waits for it: when process 1 exits, the kernel kills
everything the job left behind (a fork bomb included), and the exit code says why the job
ended (the codes are `sandbox.isolation.EXIT_*`).

The job itself gets:
- resource limits (address space, CPU seconds, processes and threads, file size, open files);
- a Landlock ruleset: read and execute only the interpreter, the libraries and the job's
  code; read only its data; write only its work folder; no TCP or UDP, no signals or
  abstract sockets outside its domain;
- audit hooks that stop it with a clear reason the moment it opens a socket or a path
  outside that list, instead of leaving a PermissionError for its code to swallow.

Only the standard library and landlockpy run before the job's code: this file must stay
importable with nothing else on the path.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import runpy
import signal
import sys
import traceback

# Exit codes: keep in step with sandbox.isolation.
EXIT_NETWORK, EXIT_FILESYSTEM, EXIT_MEMORY, EXIT_PROCESSES, EXIT_SETUP = 86, 87, 88, 89, 90

_NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                   "socket.gethostbyname", "socket.gethostbyaddr"}
# Libraries probe for IPv6 at import by binding an ephemeral loopback port (urllib3 does):
# that is let through to the kernel, which refuses it (no interface is up, and Landlock
# denies binding), so the probe just finds no IPv6.
_LOOPBACK_PROBES = {("::1", 0), ("127.0.0.1", 0)}


def _violation(code: int, message: str) -> None:
    try:
        os.write(2, f"\nMILIAO-JAIL: {message}\n".encode())
    finally:
        os._exit(code)


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _install_audit(readable: list[str], writable: list[str]) -> None:
    allowed = readable + writable

    def hook(event: str, args: tuple) -> None:
        if event in _NETWORK_EVENTS:
            if event == "socket.bind" and len(args) > 1 and isinstance(args[1], tuple) \
                    and tuple(args[1][:2]) in _LOOPBACK_PROBES:
                return
            _violation(EXIT_NETWORK, f"network access refused ({event} {args[1:2]!r}): jobs have no network")
        elif event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if path.startswith("/proc/self/fd/") or not path:
                return
            real = os.path.realpath(path)
            mode = args[1] if len(args) > 1 else "r"
            flags = args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if not _under(real, writable if writing else allowed):
                verb = "writing" if writing else "reading"
                _violation(EXIT_FILESYSTEM, f"{verb} {real} refused: outside the job's data and work folders")

    sys.addaudithook(hook)


def _limit(limits: dict) -> None:
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 2))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["output_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def _landlock(readable: list[str], data: str, writable: list[str], listable: list[str]) -> None:
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope

    read = AccessFS.READ_FILE | AccessFS.READ_DIR
    file_rights = AccessFS.EXECUTE | AccessFS.READ_FILE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE  # all a file takes

    def allow(path: str, access) -> None:
        rules.allow_path(path, access if os.path.isdir(path) else access & file_rights)

    with Ruleset(
        handled_net=AccessNet.BIND_TCP | AccessNet.CONNECT_TCP | AccessNet.BIND_UDP | AccessNet.CONNECT_SEND_UDP,
        scoped=Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL,
    ) as rules:
        for path in readable:
            if os.path.exists(path):
                allow(path, read | AccessFS.EXECUTE)
        allow(data, read)
        for path in listable:  # import path entries: names only, so imports can search them
            rules.allow_path(path, AccessFS.READ_DIR)
        for path in writable:
            allow(path, ~AccessFS.EXECUTE & ~AccessFS.MAKE_CHAR & ~AccessFS.MAKE_BLOCK)
        rules.restrict()


def _run_job(spec: dict) -> None:
    limits = spec["limits"]
    readable = [os.path.realpath(p) for p in [*spec["readable"], "/proc/self"]]
    data = os.path.realpath(spec["data"])
    writable = [os.path.realpath(spec["work"]), "/dev/null"]
    os.chdir(spec["work"])
    try:
        _landlock(readable, data, writable, spec.get("pythonpath", []))
        _limit(limits)
    except Exception as exc:
        _violation(EXIT_SETUP, f"the isolation could not be set up: {type(exc).__name__}: {exc}")
    sys.argv = [spec["script"], *spec.get("args", [])]
    sys.path[:0] = [os.path.dirname(spec["script"]), *spec.get("pythonpath", [])]
    _install_audit(readable + [data], writable)
    try:
        runpy.run_path(spec["script"], run_name="__main__")
    except MemoryError:
        _violation(EXIT_MEMORY, f"memory limit reached ({limits['memory_mb']} MB)")
    except BlockingIOError as exc:
        if exc.errno == errno.EAGAIN:
            _violation(EXIT_PROCESSES, f"process limit reached ({limits['processes']} processes and threads)")
        raise
    except RuntimeError as exc:
        if "alloc" in str(exc).lower() and "memory" in str(exc).lower():
            _violation(EXIT_MEMORY, f"memory limit reached ({limits['memory_mb']} MB): {exc}")
        raise


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _run_job(spec)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    # Process 1: wait for the job (reaping orphans on the way), then exit, which makes the
    # kernel kill whatever the job left in the namespace.
    while True:
        reaped, status = os.wait()
        if reaped == pid:
            break
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGXCPU, signal.SIGKILL) and os.times().children_user + os.times().children_system \
                >= spec["limits"]["cpu_seconds"]:
            os.write(2, f"\nMILIAO-JAIL: CPU time limit reached ({spec['limits']['cpu_seconds']} s)\n".encode())
        return 128 + sig
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # the job never started
        traceback.print_exc()
        sys.exit(EXIT_SETUP)
