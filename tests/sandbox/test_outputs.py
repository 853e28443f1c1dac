"""What a job wrote crosses the boundary as data, never as a reference (sandbox.outputs): each
kind of entry a hostile job can leave in its folder, taken across or refused by name, with
nothing of a link's target copied; and the caps on files and bytes."""
from __future__ import annotations

import os
import signal
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox import outputs
from sandbox.outputs import Caps, OutputRefused, collect, read_file

pytestmark = pytest.mark.sandbox

CAPS = Caps(max_bytes=1 << 20, max_files=20)
MASTER_KEY = "f" * 43 + "="  # what a Fernet key looks like


@contextmanager
def deadline(seconds: int = 5):
    """Fail, rather than hang, if the copy blocks (a FIFO) or never ends (/dev/zero)."""

    def expired(*_):
        raise AssertionError(f"still copying after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def job(tmp_path):
    """A job's outputs folder beside the platform's state (a master key in it)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "miliao_master_key").write_text(MASTER_KEY)
    (state / "miliao_master_key").chmod(0o600)
    out = tmp_path / "work" / "outputs"
    out.mkdir(parents=True)
    (out / "summary.csv").write_text("neighbourhood,count\nA,12\n")
    return out, state, tmp_path / "held"


def refused(source, target, caps=CAPS, **kw) -> OutputRefused:
    with deadline(), pytest.raises(OutputRefused) as caught:
        collect(source, target, caps, **kw)
    return caught.value


def everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


def test_regular_files_and_nested_folders_are_copied_as_data(job):
    out, _, held = job
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "deep.json").write_text('{"x": 1}')
    (out / "a" / "notes.txt").write_text("hello")
    taken = collect(out, held, CAPS)
    assert sorted(t.path for t in taken) == ["a/b/deep.json", "a/notes.txt", "summary.csv"]
    assert (held / "a" / "b" / "deep.json").read_text() == '{"x": 1}' and (held / "summary.csv").is_file()
    assert not any(p.is_symlink() for p in held.rglob("*"))
    assert sum(t.size for t in taken) == sum(p.stat().st_size for p in held.rglob("*") if p.is_file())


@pytest.mark.parametrize("target", ["master_key", "/etc/passwd", "/dev/zero", "/", "dangling"])
def test_a_symbolic_link_is_refused_and_its_target_never_read(job, target):
    out, state, held = job
    pointed = {"master_key": state / "miliao_master_key", "dangling": state / "nothing"}.get(target, Path(target))
    (out / "summary.txt").symlink_to(pointed)
    caught = refused(out, held)
    assert caught.reason == "symlink" and caught.path == "summary.txt"
    assert caught.public == "an output file is a symbolic link" and "summary" not in caught.public
    copied = everything_under(held)
    assert MASTER_KEY.encode() not in copied and b"root:" not in copied and b"\0" * 16 not in copied
    assert oct(stat.S_IMODE((state / "miliao_master_key").stat().st_mode)) == "0o600"


def test_a_linked_folder_and_a_linked_outputs_folder_are_refused(job, tmp_path):
    out, state, held = job
    (out / "sub").symlink_to(state, target_is_directory=True)
    assert refused(out, held).reason == "symlink"
    (out / "sub").unlink()
    swapped = tmp_path / "work" / "swapped"
    swapped.symlink_to(state, target_is_directory=True)  # the whole outputs/ replaced by a link
    caught = refused(swapped, tmp_path / "held2")
    assert caught.reason == "symlink"
    assert MASTER_KEY.encode() not in everything_under(tmp_path / "held2")


def test_a_fifo_is_refused_without_blocking(job):
    out, _, held = job
    os.mkfifo(out / "predictions.csv")
    assert refused(out, held).reason == "fifo"
    with deadline(), pytest.raises(OutputRefused) as caught:
        read_file(out / "predictions.csv", max_bytes=1000)
    assert caught.value.reason == "fifo"


def test_a_socket_is_refused(job):
    out, _, held = job
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(out / "s.sock"))
        assert refused(out, held).reason == "socket"
    finally:
        listener.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_is_refused(job):
    out, _, held = job
    os.mknod(out / "zero.txt", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    assert refused(out, held).reason == "device"


def test_a_device_read_directly_is_refused():
    with deadline(), pytest.raises(OutputRefused) as caught:
        read_file(Path("/dev/zero"), max_bytes=1 << 20)
    assert caught.value.reason == "device"


def test_a_hard_link_to_a_file_outside_is_refused(job):
    out, state, held = job
    os.link(state / "miliao_master_key", out / "key.txt")
    caught = refused(out, held)
    assert caught.reason == "hardlink" and MASTER_KEY.encode() not in everything_under(held)
    with pytest.raises(OutputRefused) as direct:
        read_file(out / "key.txt", max_bytes=1000)
    assert direct.value.reason == "hardlink"


def test_a_file_swapped_between_lstat_and_open_is_caught(job, tmp_path):
    out, state, _ = job
    other = os.lstat(state / "miliao_master_key")  # what lstat saw is not what is opened
    folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OutputRefused) as caught:
            outputs._open_file(folder, "summary.csv", other, "summary.csv")
        assert caught.value.reason == "swapped"
        (out / "link").symlink_to(state / "miliao_master_key")  # a link put in a file's place
        with pytest.raises(OutputRefused) as caught:
            outputs._open_file(folder, "link", os.lstat(out / "summary.csv"), "link")
        assert caught.value.reason == "swapped"
    finally:
        os.close(folder)


def test_too_many_files_too_large_and_too_deep_are_refused(job, tmp_path):
    out, _, _ = job
    for i in range(5):
        (out / f"f{i}.txt").write_text("x" * 300)
    assert refused(out, tmp_path / "h1", Caps(max_bytes=1 << 20, max_files=3)).reason == "too_many_files"
    assert refused(out, tmp_path / "h2", Caps(max_bytes=1000, max_files=20)).reason == "too_large"
    deep = out / "d"
    for i in range(4):
        deep = deep / str(i)
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("x")
    assert refused(out, tmp_path / "h3", Caps(max_bytes=1 << 20, max_files=40, max_depth=2)).reason == "too_deep"
    with pytest.raises(OutputRefused) as caught:
        read_file(out / "f0.txt", max_bytes=100)
    assert caught.value.reason == "too_large"


def test_names_that_are_not_printable_text_are_refused(job, tmp_path):
    out, _, _ = job
    (out / "a\nb.txt").write_text("x")
    assert refused(out, tmp_path / "h1").reason == "name"
    (out / "a\nb.txt").unlink()
    fd = os.open(os.fsencode(out) + b"/\xff.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    assert refused(out, tmp_path / "h2").reason == "name"


def test_only_and_required_take_just_the_named_files(job):
    out, _, held = job
    (out / "predictions.csv").write_text("unit_id,prediction\n")
    (out / "junk.bin").symlink_to("/etc/passwd")  # not asked for: not even looked at
    taken = collect(out, held, CAPS, only={"predictions.csv"}, required={"predictions.csv"})
    assert [t.path for t in taken] == ["predictions.csv"]
    (out / "predictions.csv").unlink()
    (out / "predictions.csv").symlink_to("/etc/passwd")
    assert refused(out, held.parent / "held2", only={"predictions.csv"}).reason == "symlink"
    (out / "predictions.csv").unlink()
    assert refused(out, held.parent / "held3", only={"predictions.csv"},
                  required={"predictions.csv"}).reason == "missing"


def test_read_and_copy_a_single_file(job, tmp_path):
    out, _, _ = job
    assert read_file(out / "summary.csv", max_bytes=1000) == b"neighbourhood,count\nA,12\n"
    assert outputs.copy_file(out / "summary.csv", tmp_path / "copy.csv", max_bytes=1000) == 25
    (out / "p.csv").symlink_to("/etc/passwd")
    with pytest.raises(OutputRefused) as caught:
        read_file(out / "p.csv", max_bytes=1 << 20)
    assert caught.value.reason == "symlink" and "root" not in str(caught.value)
