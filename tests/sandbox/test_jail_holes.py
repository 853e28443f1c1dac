"""The jail's last holes, attacked the way the outside test did: sockets opened through ctypes
(round Python's audit hooks) towards a real listener outside the jail, the kernel's other
ways out (io_uring, ptrace, keyrings, bpf, mounts, namespaces), a job that fills more disk
than its folder holds, and a jail whose seccomp filter cannot be installed."""
from __future__ import annotations

import os
import socket
import textwrap
import threading

import pytest

import pyseccomp  # noqa: F401  (the jail imports it before its restrictions; so does this process)

from sandbox import jail as jail_module
from sandbox.isolation import Limits, run_isolated

pytestmark = pytest.mark.sandbox

# Every probe runs in a child the job forks, so that each one is seen to fail on its own; the
# job prints one line per probe, which the test reads back.
PROBES = r'''
import ctypes, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
LISTENER = sys.argv[2]

def unix_address(path: bytes) -> bytes:
    return struct.pack("H", socket.AF_UNIX) + path + b"\0"

def connect_unix(path: bytes):
    fd = libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
    if fd < 0:
        return fd
    addr = unix_address(path)
    rc = libc.connect(fd, addr, len(addr))
    libc.send(fd, b"secret rows", 11, 0)
    return rc

def probe(name, call):
    pid = os.fork()
    if pid == 0:
        rc = call()
        print(f"{name} returned {rc} errno {ctypes.get_errno()}", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print(f"{name} killed by signal {os.WTERMSIG(status)}", flush=True)

probe("unix-pathname", lambda: connect_unix(LISTENER.encode()))
probe("unix-abstract", lambda: connect_unix(b"\0miliao-outside"))
probe("netlink", lambda: libc.socket(16, socket.SOCK_RAW, 0))           # AF_NETLINK, NETLINK_ROUTE
probe("packet", lambda: libc.socket(17, socket.SOCK_RAW, 0x0300))       # AF_PACKET, ETH_P_ALL
probe("vsock", lambda: libc.socket(40, socket.SOCK_STREAM, 0))          # AF_VSOCK
probe("inet", lambda: libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0))
probe("inet6", lambda: libc.socket(socket.AF_INET6, socket.SOCK_DGRAM, 0))
probe("family-64bit", lambda: libc.syscall(41, ctypes.c_long((1 << 32) | 1), 1, 0))  # AF_UNIX in the low half
params = (ctypes.c_byte * 120)()
probe("io_uring", lambda: libc.syscall(425, 8, params))
probe("ptrace", lambda: libc.syscall(101, 16, os.getppid(), 0, 0))     # PTRACE_ATTACH to the job
probe("keyctl", lambda: libc.syscall(250, 0, -3, 0))                    # KEYCTL_GET_KEYRING_ID
probe("bpf", lambda: libc.syscall(321, 0, 0, 0))
probe("userfaultfd", lambda: libc.syscall(323, 0))
probe("perf", lambda: libc.syscall(298, 0, 0, -1, -1, 0))
probe("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
probe("unshare", lambda: libc.unshare(0x10000000))                      # CLONE_NEWUSER
probe("clone-newnet", lambda: libc.syscall(56, 0x40000000 | 17, 0, 0, 0, 0))  # CLONE_NEWNET | SIGCHLD
probe("clone3", lambda: libc.syscall(435, 0, 0))
probe("personality", lambda: libc.personality(0x0040000))             # ADDR_NO_RANDOMIZE
probe("setns", lambda: libc.setns(libc.open(b"/proc/self/ns/net", 0), 0))
pair = socket.socketpair()  # a pair inside the job stays usable (asyncio, multiprocessing)
pair[0].send(b"x")
print("socketpair", pair[1].recv(1), flush=True)
os.symlink(sys.argv[3], "secret-link.txt")  # brought back to disk as a link, never read
print("capabilities", [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1], flush=True)
# Last, in the job's own process: the kernel stops it, and the jail says why.
print("final", connect_unix(LISTENER.encode()), flush=True)
print("still running after the socket", flush=True)
'''


@pytest.fixture(scope="module")
def listener(tmp_path_factory):
    """Unix-socket listeners outside the jail, a pathname one and an abstract one, recording
    every connection and every byte they get."""
    path = tmp_path_factory.mktemp("outside") / "listener.sock"
    got: list[bytes] = []
    servers = []
    for address in (str(path), "\0miliao-outside"):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(8)
        server.settimeout(0.2)
        servers.append(server)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            for server in servers:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(1)
                    got.append(b"connected:" + conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, got
    stop.set()
    thread.join(5)
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def probed(tmp_path_factory, listener):
    root = tmp_path_factory.mktemp("probes")
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    secret = root / "platform-secret.txt"
    secret.write_text("MASTER KEY")
    (root / "code").mkdir()
    script = root / "code" / "job.py"
    script.write_text(PROBES)
    outcome = run_isolated(script, data=root / "data", work=root / "work",
                           limits=Limits(cpu_seconds=20, wall_seconds=30, memory_mb=1024),
                           args=[str(root / "data" / "rows.csv"), str(listener[0]), str(secret)])
    lines = dict(line.split(" ", 1) for line in outcome.log.splitlines() if " " in line)
    return outcome, lines, root


def test_a_socket_of_any_family_through_ctypes_reaches_nothing_outside(probed, listener):
    outcome, lines, _ = probed
    assert listener[1] == [], "the listener outside the jail was reached"
    sigsys = f"killed by signal {int(__import__('signal').SIGSYS)}"
    for family in ("unix-pathname", "unix-abstract", "netlink", "packet", "vsock", "family-64bit"):
        assert lines.get(family) == sigsys, (family, outcome.log)
    for family in ("inet", "inet6"):  # what libraries probe for IPv6 with: refused, not fatal
        assert lines.get(family) == f"returned -1 errno {13}", (family, outcome.log)  # EACCES
    assert lines.get("socketpair") == "b'x'"


def test_the_job_that_opens_a_socket_is_stopped_with_the_reason(probed):
    outcome, lines, _ = probed
    assert not outcome.ok and outcome.reason == "network", outcome
    assert "socket" in outcome.message and "jobs have no sockets" in outcome.message
    assert "final" not in lines and "still running after the socket" not in outcome.log


@pytest.mark.parametrize("call, error", [
    ("io_uring", 38), ("clone3", 38),  # ENOSYS: as on a kernel without them
    ("ptrace", 1), ("keyctl", 1), ("bpf", 1), ("userfaultfd", 1), ("perf", 1), ("mount", 1), ("unshare", 1),
    ("clone-newnet", 1), ("personality", 1), ("setns", 1),  # EPERM
])
def test_the_kernels_other_ways_out_fail_with_an_errno(probed, call, error):
    outcome, lines, _ = probed
    assert lines.get(call) == f"returned -1 errno {error}", (call, outcome.log)


def test_the_job_has_no_capabilities_and_its_links_come_back_as_links(probed):
    outcome, lines, root = probed
    assert int(lines["capabilities"], 16) == 0
    link = root / "work" / "secret-link.txt"
    assert link.is_symlink() and os.readlink(link) == str(root / "platform-secret.txt")


@pytest.fixture
def small_jail(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "code").mkdir()

    def run(source: str, **limits):
        script = tmp_path / "code" / "job.py"
        script.write_text(textwrap.dedent(source))
        limits = {"cpu_seconds": 20, "wall_seconds": 30, "memory_mb": 1024, **limits}
        return run_isolated(script, data=tmp_path / "data", work=tmp_path / "work", limits=Limits(**limits))

    run.work = tmp_path / "work"
    return run


def test_files_each_below_the_file_limit_are_stopped_at_the_folders_total(small_jail):
    # 12 files of 6 MB, each under the 8 MB a file may hold, are 72 MB: over the 32 MB the
    # folder holds. The kernel refuses the bytes past 32 MB; the job is stopped as `disk`.
    outcome = small_jail("""
        import os
        block = os.urandom(1 << 20)
        for n in range(12):
            try:
                with open(f"part-{n}.bin", "wb") as f:
                    for _ in range(6):
                        f.write(block)
            except OSError as exc:
                print("write refused:", exc.strerror, flush=True)
        print("the job went on", flush=True)
    """, output_mb=8, disk_mb=32)
    assert not outcome.ok and outcome.reason == "disk", outcome
    assert "32 MB" in outcome.message
    written = sum(p.stat().st_size for p in small_jail.work.iterdir())
    assert written <= 32 * 2**20


def test_a_folder_of_many_small_files_is_stopped_at_the_file_count(small_jail):
    outcome = small_jail("""
        for n in range(5000):
            open(f"f{n}", "w").close()
    """, files=100)
    assert not outcome.ok and outcome.reason == "disk", outcome
    assert len(list(small_jail.work.iterdir())) <= 100


def test_a_jail_whose_seccomp_filter_cannot_be_installed_runs_nothing(tmp_path, monkeypatch):
    # The jail's own setup, in a child of this process, with a filter rule the kernel has
    # no syscall for: the setup fails, and the job's code never runs.
    (tmp_path / "work").mkdir()
    script = tmp_path / "job.py"
    marker = tmp_path / "work" / "ran"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    spec = {"script": str(script), "args": [], "data": str(tmp_path), "work": str(tmp_path / "work"),
            "readable": [], "pythonpath": [], "limits": Limits(memory_mb=1024).to_dict()}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.dup2(write, 2)
        jail_module.DENIED = {**jail_module.DENIED, "no_such_syscall": 1}
        try:
            jail_module._run_job(spec)
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    said = os.read(read, 4000).decode()
    os.close(read)
    assert os.WEXITSTATUS(status) == jail_module.EXIT_SETUP, said
    assert "the isolation could not be set up" in said
    assert not marker.exists()
