"""Job code is isolated: each attack a submitted script might try is stopped and reported
with its reason, and a well-behaved job still runs and writes its output."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.isolation import Limits, run_isolated

pytestmark = pytest.mark.sandbox


@pytest.fixture
def jail(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n1,2\n")
    (tmp_path / "platform-secret.txt").write_text("DATABASE_URL=postgres://admin:hunter2@db/miliao")
    code = tmp_path / "code"
    code.mkdir()

    def run(source: str, **limits):
        script = code / "job.py"
        script.write_text(textwrap.dedent(source))
        limits = {"cpu_seconds": 20, "wall_seconds": 30, "memory_mb": 2048, **limits}
        return run_isolated(script, data=data, work=tmp_path / "work", limits=Limits(**limits),
                            args=[str(data / "rows.csv")])

    run.root = tmp_path
    return run


def test_a_well_behaved_job_reads_its_data_and_writes_its_output(jail):
    outcome = jail("""
        import sys, os
        rows = open(sys.argv[1]).read().splitlines()
        open("result.txt", "w").write(str(len(rows)))
        print("env:", sorted(os.environ))
    """)
    assert outcome.ok, outcome.log
    assert (jail.root / "work" / "result.txt").read_text() == "2"
    # Nothing of the platform's environment (database URL, keys) reaches the job.
    env_line = next(line for line in outcome.log.splitlines() if line.startswith("env:"))
    assert "DATABASE_URL" not in env_line and "SECRET" not in env_line and "CHAIN" not in env_line


def test_opening_a_socket_is_stopped_and_reported(jail):
    outcome = jail("""
        import socket
        s = socket.socket()
        s.connect(("10.0.0.1", 5432))
    """)
    assert not outcome.ok and outcome.reason == "network"
    assert "network access refused" in outcome.message


def test_the_kernel_refuses_the_network_even_without_pythons_hooks(jail):
    # ctypes' libc connect() goes round the audit hook: the empty network namespace and
    # Landlock still refuse it, and the job can only report that it failed.
    outcome = jail("""
        import ctypes, socket, struct
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
        addr = struct.pack("!HH4s8x", socket.AF_INET, 5432, socket.inet_aton("127.0.0.1"))
        rc = libc.connect(fd, addr, len(addr))
        print("connect", rc, ctypes.get_errno())
        assert rc != 0
    """)
    assert outcome.ok, outcome.log
    assert "connect -1" in outcome.log


def test_reading_outside_its_data_is_stopped_and_reported(jail):
    outcome = jail(f"""
        print(open("{jail.root / 'platform-secret.txt'}").read())
    """)
    assert not outcome.ok and outcome.reason == "filesystem"
    assert "platform-secret.txt" in outcome.message
    assert "hunter2" not in outcome.log


def test_landlock_refuses_reads_that_skip_pythons_hooks(jail):
    outcome = jail(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.open(b"{jail.root / 'platform-secret.txt'}", 0)
        print("open", fd, ctypes.get_errno())
        assert fd == -1
    """)
    assert outcome.ok, outcome.log
    assert "open -1 13" in outcome.log  # EACCES


def test_writing_its_data_is_refused(jail):
    outcome = jail("""
        import sys
        open(sys.argv[1], "a").write("tampered")
    """)
    assert not outcome.ok and outcome.reason == "filesystem"
    assert (jail.root / "data" / "rows.csv").read_text() == "a,b\n1,2\n"


def test_a_fork_bomb_is_stopped_at_the_process_limit(jail):
    outcome = jail("""
        import os
        while True:
            os.fork()
    """, processes=32)
    assert not outcome.ok and outcome.reason == "processes", outcome
    assert outcome.seconds < 25


def test_overrunning_memory_is_stopped(jail):
    outcome = jail("""
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
    """, memory_mb=1024)
    assert not outcome.ok and outcome.reason == "memory"
    assert "1024 MB" in outcome.message


def test_burning_cpu_is_stopped_at_the_cpu_limit(jail):
    outcome = jail("""
        while True:
            pass
    """, cpu_seconds=2)
    assert not outcome.ok and outcome.reason == "cpu_time"


def test_sleeping_forever_is_stopped_at_the_wall_clock(jail):
    outcome = jail("""
        import time
        time.sleep(3600)
    """, wall_seconds=2)
    assert not outcome.ok and outcome.reason == "wall_clock"
    assert outcome.seconds < 10


def test_a_crash_is_reported_with_its_last_line(jail):
    outcome = jail("""
        raise ValueError("bad column")
    """)
    assert not outcome.ok and outcome.reason == "error"
    assert "ValueError: bad column" in outcome.message


@pytest.mark.parametrize("field, value", [("memory_mb", 10), ("processes", 0), ("cpu_seconds", "9"),
                                          ("wall_seconds", True)])
def test_limits_refuse_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"limits.{field}"):
        Limits(**{field: value})
