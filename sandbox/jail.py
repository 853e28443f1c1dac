"""Inside the isolation boundary: run one job script under limits, then report how it ended.

`sandbox.isolation` starts this file as `unshare --user --map-root-user --mount --net --pid
--fork -- python -I sandbox/jail.py SPEC`, so it is process 1 of fresh user, mount, network
and PID namespaces, with no network but a down loopback. Process 1 mounts a size-limited
tmpfs over the job's work folder (the kernel caps the bytes and files the job writes in
total), forks the job and waits for it, watching the folder fill. When the job ends, process
1 kills whatever it left behind, copies the folder back to disk without following a link, and
exits, which makes the kernel kill anything left in the namespace; the exit code says why the
job ended (the codes are `sandbox.isolation.EXIT_*`).

The job itself gets:
- no capabilities (dropped from every set, the bounding set included);
- resource limits (address space, CPU seconds, processes and threads, file size, open files);
- a Landlock ruleset: read and execute only the interpreter, the libraries and the job's
  code; read only its data; write only its work folder; no TCP or UDP, no signals or
  abstract sockets outside its domain;
- a seccomp filter (libseccomp, through pyseccomp): no socket of any family (a Unix, netlink,
  packet or vsock socket kills the job; an IP socket, which libraries open to probe for IPv6,
  fails with EACCES), and no io_uring, ptrace, bpf, keyctl, userfaultfd, perf events, mounts
  or new namespaces (each fails with an errno, as libraries that probe for them expect);
- audit hooks that stop it with a clear reason the moment it opens a socket or a path
  outside that list, instead of leaving a PermissionError for its code to swallow.

Only the standard library, landlockpy and pyseccomp run before the job's code: this file must
stay importable with nothing else on the path. Any step of the setup that fails stops the
job before its code runs (EXIT_SETUP).
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import runpy
import shutil
import signal
import socket
import stat
import sys
import traceback

# Exit codes: keep in step with sandbox.isolation.
EXIT_NETWORK, EXIT_FILESYSTEM, EXIT_MEMORY, EXIT_PROCESSES, EXIT_SETUP, EXIT_DISK, EXIT_COLLECT = \
    86, 87, 88, 89, 90, 91, 92
TICK = 0.25  # seconds between process 1's looks at the work folder while the job runs
LIVE_MAX = 1 << 20  # bytes of a live file (progress) mirrored to disk while the job runs

# The seccomp filter. Everything not named here is allowed (a deny list: an allow list for
# CPython, torch and pyarrow would break with every release of them).
DENIED = {  # syscall: errno; each fails as where the kernel lacks it or forbids it
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3"), errno.ENOSYS),
    **dict.fromkeys((
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",  # other processes' memory
        "keyctl", "add_key", "request_key",  # the kernel keyring
        "bpf", "userfaultfd", "perf_event_open",  # kernel attack surface, side channels
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
        "fspick", "mount_setattr", "unshare", "setns",  # the namespaces the job is in
        "open_by_handle_at", "name_to_handle_at",  # opening files by handle, round Landlock's paths
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "acct", "swapon",
        "swapoff", "reboot", "syslog", "quotactl",
    ), errno.EPERM),
}
# clone() flags that make new namespaces (clone3 is refused: seccomp cannot read its flags).
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
PERSONALITY_DENIED = (0x0040000, 0x0400000)  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC

_NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                   "socket.gethostbyname", "socket.gethostbyaddr"}
# Libraries probe for IPv6 at import by binding an ephemeral loopback port (urllib3 does):
# that is let through to the kernel, which refuses it (the seccomp filter refuses the socket
# itself; no interface is up; Landlock denies binding), so the probe just finds no IPv6.
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


def _seccomp() -> None:
    """No sockets, no io_uring (which opens sockets of its own), no tracing, no mounts or
    namespaces. A socket of any family but IP kills the job at once (nothing a job needs
    opens one; the job is reported as having tried the network); an IP socket fails with
    EACCES, since libraries probe for IPv6 by opening one; the rest fail with their errno."""
    import pyseccomp as sc  # imported by process 1 already (it runs ldconfig to find libseccomp)

    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    rules.set_attr(sc.Attr.CTL_NNP, 1)
    for name, code in DENIED.items():
        rules.add_rule(sc.ERRNO(code), name)
    for flag in CLONE_NAMESPACES:
        rules.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for flag in PERSONALITY_DENIED:
        rules.add_rule(sc.ERRNO(errno.EPERM), "personality", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    ip = (socket.AF_INET, socket.AF_INET6)
    for family in ip:
        rules.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.EQ, family))
    rules.add_rule(sc.KILL_PROCESS, "socket", sc.Arg(0, sc.LT, min(ip)))
    rules.add_rule(sc.KILL_PROCESS, "socket", sc.Arg(0, sc.GT, max(ip)))
    for family in range(min(ip) + 1, max(ip)):
        rules.add_rule(sc.KILL_PROCESS, "socket", sc.Arg(0, sc.EQ, family))
    # A connected pair inside the job (asyncio's self-pipe, multiprocessing.Pipe): it reaches
    # nothing outside, since no socket can be opened to hand one of its ends to.
    rules.add_rule(sc.ERRNO(errno.EPERM), "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    rules.load()


def _drop_capabilities() -> None:
    """The job is root of its user namespace (so that process 1 could mount its folder):
    take every capability away from it, for good, before its code runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), f"dropping capability {cap} from the bounding set")
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    header, data = Header(0x20080522, 0), (ctypes.c_uint32 * 6)()  # _LINUX_CAPABILITY_VERSION_3: all sets empty
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "clearing the capability sets")


def _run_job(spec: dict) -> None:
    limits = spec["limits"]
    readable = [os.path.realpath(p) for p in [*spec["readable"], "/proc/self"]]
    data = os.path.realpath(spec["data"])
    writable = [os.path.realpath(spec["work"]), "/dev/null"]
    os.chdir(spec["work"])
    try:
        _drop_capabilities()
        _landlock(readable, data, writable, spec.get("pythonpath", []))
        _limit(limits)
        _seccomp()
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
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _violation(EXIT_DISK, _disk_message(limits))
        if exc.errno == errno.EACCES and _raised_by_socket(exc):
            _violation(EXIT_NETWORK, "network access refused (a socket): jobs have no network")
        raise


def _raised_by_socket(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and os.path.basename(frames[-1].filename) == "socket.py"


def _disk_message(limits: dict) -> str:
    return (f"disk limit reached: the job's folder holds at most {limits['disk_mb']} MB in "
            f"{limits['files']} files and folders")


# --- process 1: the job's folder ---------------------------------------------------------


def _mount_work(work: str, limits: dict) -> int:
    """A tmpfs of `disk_mb` MB and `files` inodes over the work folder, holding what the
    platform put there. Returns a descriptor of the folder on disk underneath."""
    disk = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(None, b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE on /
        raise OSError(ctypes.get_errno(), "making the mounts private")
    options = f"size={limits['disk_mb']}m,nr_inodes={limits['files'] + 1},mode=0755".encode()
    if libc.mount(b"miliao-job", os.fsencode(work), b"tmpfs", 0x2 | 0x4, options) != 0:  # MS_NOSUID | MS_NODEV
        raise OSError(ctypes.get_errno(), f"mounting a {limits['disk_mb']} MB tmpfs on the work folder")
    _copy_tree(f"/proc/self/fd/{disk}", work)
    return disk


def _full(work: str) -> bool:
    st = os.statvfs(work)
    return st.f_bavail == 0 or st.f_favail == 0


def _mirror(work: str, disk: int, names: list[str]) -> None:
    """Copy the live files (the job's progress) to the folder on disk while the job runs:
    regular files only, opened without following links or blocking on a FIFO."""
    for name in names:
        try:
            fd = os.open(os.path.join(work, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            content = os.read(fd, LIVE_MAX)
        finally:
            os.close(fd)
        target = f"/proc/self/fd/{disk}/{name}"
        with open(target + ".partial", "wb") as f:
            f.write(content)
        os.replace(target + ".partial", target)


def _copy_tree(source: str, target: str) -> None:
    """Folders, regular files, symbolic links (as links: never followed) and FIFOs (as
    FIFOs) from `source` to the empty `target`; nothing else. Only process 1 runs then."""
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(os.listdir(os.path.join(source, rel) if rel else source)):
            path, dest = os.path.join(source, rel, name), os.path.join(target, rel, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dest, 0o755)
                stack.append(os.path.join(rel, name))
            elif stat.S_ISREG(mode):
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644),
                                   "wb") as out, os.fdopen(os.dup(fd), "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(path), dest)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dest, 0o644)


def _collect(work: str, disk: int) -> None:
    """The job's folder, back on disk in place of what was there before it ran."""
    base = f"/proc/self/fd/{disk}"
    for name in os.listdir(base):
        path = os.path.join(base, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    _copy_tree(work, base)


def _kill_all() -> None:
    """Every process of the namespace but process 1."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # none left
        pass


def _wait(pid: int, work: str, disk: int, spec: dict) -> tuple[int, bool]:
    """Wait for the job, reaping orphans on the way; stop it when its folder is full.
    Returns its wait status and whether the folder filled."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    live = spec.get("live", [])
    while True:
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                reaped = 0
            if reaped == pid:
                return status, _full(work)
            if reaped == 0:
                break
        if _full(work):
            _kill_all()
            return os.waitpid(pid, 0)[1], True
        _mirror(work, disk, live)
        signal.sigtimedwait({signal.SIGCHLD}, TICK)


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    work = os.path.realpath(spec["work"])
    try:
        import pyseccomp  # noqa: F401  (before Landlock: finding libseccomp runs ldconfig)

        disk = _mount_work(work, spec["limits"])
    except Exception as exc:
        os.write(2, f"\nMILIAO-JAIL: the isolation could not be set up: {type(exc).__name__}: {exc}\n".encode())
        return EXIT_SETUP
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(disk)
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
    # Process 1: wait for the job, stop what it left running, bring its folder back to disk,
    # then exit, which makes the kernel kill anything still in the namespace.
    try:
        status, full = _wait(pid, work, disk, spec)
        _kill_all()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        _collect(work, disk)
    except Exception as exc:
        os.write(2, f"\nMILIAO-JAIL: the job's folder could not be collected: {type(exc).__name__}\n".encode())
        return EXIT_COLLECT
    if full:
        os.write(2, f"\nMILIAO-JAIL: {_disk_message(spec['limits'])}\n".encode())
        return EXIT_DISK
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGXCPU, signal.SIGKILL) and os.times().children_user + os.times().children_system \
                >= spec["limits"]["cpu_seconds"]:
            os.write(2, f"\nMILIAO-JAIL: CPU time limit reached ({spec['limits']['cpu_seconds']} s)\n".encode())
        if sig == signal.SIGSYS:
            os.write(2, b"\nMILIAO-JAIL: network access refused (a Unix, netlink, packet or other non-IP socket): "
                        b"jobs have no sockets\n")
            return EXIT_NETWORK
        return 128 + sig
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # the job never started
        traceback.print_exc()
        sys.exit(EXIT_SETUP)
