"""What a job or a submission wrote, brought across the boundary as data, never as references.

Everything the platform reads out of a folder that jailed code could write (a code job's
`outputs/`, a training job's `model.pt` and `result.json`, a submission's `predictions.csv`,
a DP job's contributions) goes through this module, and nothing else reads those folders:

- every entry is looked at with `lstat` (through the folder's descriptor, so a path the job
  swapped for a link between two calls is never followed), and only regular files and plain
  folders are taken;
- a file is opened with `O_NOFOLLOW | O_NONBLOCK` and checked again with `fstat`: it must be
  the same regular file (device and inode) that `lstat` saw, with one link;
- symbolic links, hard links (`st_nlink > 1`: the same inode under another name, possibly
  outside the folder), devices, FIFOs and sockets are refused, each with its own reason;
- the total size and the number of files are capped (`Caps`), and a file is never read past
  what is left of the total, so a file that grows or a device behind it cannot fill the disk.

A refusal raises `OutputRefused`: its `reason` is one of `REASONS` (fixed text, fit for the
applicant), its `path` the entry's name (job-chosen text: for the data owner's stewards only).
Plain Python, no Django: the caps come from the platform (`jobs.data.output_caps`).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
NAME_MAX = 255

# Each refusal's fixed text: what an applicant reads (it never quotes what the job wrote).
REASONS = {
    "symlink": "an output file is a symbolic link",
    "hardlink": "an output file is a hard link (it has other names)",
    "device": "an output file is a device",
    "fifo": "an output file is a FIFO (named pipe)",
    "socket": "an output file is a socket",
    "special": "an output entry is neither a regular file nor a folder",
    "swapped": "an output file changed while it was being read",
    "name": "an output file's name is not plain printable text",
    "too_many_files": "the output has too many files",
    "too_large": "the output is larger than the limit",
    "too_deep": "the output's folders are nested too deeply",
    "missing": "an expected output file is missing",
    "unreadable": "an output file could not be read",
}


class OutputRefused(ValueError):
    """An entry of a job's folder that is not taken across. `reason` is a key of REASONS."""

    def __init__(self, reason: str, path: str = ""):
        super().__init__(f"{REASONS[reason]}{f' ({shown_name(path)})' if path else ''}")
        self.reason, self.path = reason, path

    @property
    def public(self) -> str:
        """The text an applicant may read: the category, never the job's file name."""
        return REASONS[self.reason]


@dataclass(frozen=True)
class Caps:
    """Limits on what one job or submission may bring out: total bytes, files, folder depth."""

    max_bytes: int
    max_files: int
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_files", "max_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"caps.{name}: a whole number of at least 1, got {value!r}")


@dataclass(frozen=True)
class Taken:
    """A file brought across: its path relative to the folder, and its size."""

    path: str
    size: int


def shown_name(name: str, limit: int = 80) -> str:
    """A job-chosen name made safe to show (to a steward): printable characters only, cut."""
    clean = "".join(c if c.isprintable() and c not in "\\\"'<>&" else "?" for c in name)
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"


def _kind(mode: int) -> str | None:
    """The refusal reason for an entry of this mode, or None for a regular file or folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special"


def _check_name(name: str, shown: str) -> None:
    if not name or len(name.encode("utf-8", "surrogateescape")) > NAME_MAX or not name.isprintable():
        raise OutputRefused("name", shown)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 (os.fsdecode's surrogates)
        raise OutputRefused("name", shown) from None


def _open_dir(name: str | Path, dir_fd: int | None, shown: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise OutputRefused("missing", shown) from None
    except OSError:  # ELOOP (a link) or ENOTDIR (not a folder)
        before = os.lstat(name, dir_fd=dir_fd)
        raise OutputRefused(_kind(before.st_mode) or "unreadable", shown) from None
    return fd


def _open_file(dir_fd: int, name: str, seen: os.stat_result, shown: str) -> int:
    """The file `name` in `dir_fd`, opened without following a link and without blocking on
    a FIFO, checked to be the very regular file with one link that `seen` (its lstat) was."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:  # swapped for a link (ELOOP) or removed since lstat
        raise OutputRefused("swapped", shown) from None
    now = os.fstat(fd)
    reason = None
    if not stat.S_ISREG(now.st_mode):
        reason = _kind(now.st_mode) or "swapped"
    elif (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
        reason = "swapped"
    elif now.st_nlink != 1:
        reason = "hardlink"
    if reason is not None:
        os.close(fd)
        raise OutputRefused(reason, shown)
    return fd


class _Budget:
    def __init__(self, caps: Caps):
        self.caps, self.bytes, self.files = caps, 0, 0

    def count_file(self, shown: str) -> None:
        self.files += 1
        if self.files > self.caps.max_files:
            raise OutputRefused("too_many_files", shown)

    def left(self) -> int:
        return self.caps.max_bytes - self.bytes


def _read(fd: int, budget: _Budget, shown: str, sink) -> int:
    """Copy from `fd` into `sink` (a write callable), never past the budget; returns the size."""
    size = 0
    while True:
        block = os.read(fd, min(CHUNK, budget.left() + 1))
        if not block:
            return size
        size += len(block)
        budget.bytes += len(block)
        if budget.bytes > budget.caps.max_bytes:
            raise OutputRefused("too_large", shown)
        sink(block)


def collect(source: Path, target: Path, caps: Caps, *, only: set[str] | None = None,
            required: set[str] = frozenset()) -> list[Taken]:
    """Copy the regular files under `source` (a folder jailed code could write) into `target`
    (created here, and not there before), refusing everything else. `only` takes just those
    names at the top level, and ignores the rest; `required` names must be there. Returns the
    files taken. Raises OutputRefused; `target` may then hold part of the copy."""
    target = Path(target)
    target.mkdir(parents=True)
    budget = _Budget(caps)
    taken: list[Taken] = []
    root = _open_dir(Path(source), None, Path(source).name)
    try:
        out = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _walk(root, out, "", 0, budget, taken, only)
        finally:
            os.close(out)
    finally:
        os.close(root)
    missing = set(required) - {t.path for t in taken}
    if missing:
        raise OutputRefused("missing", sorted(missing)[0])
    return taken


def _walk(src: int, dst: int, prefix: str, depth: int, budget: _Budget, taken: list[Taken],
          only: set[str] | None) -> None:
    if depth > budget.caps.max_depth:
        raise OutputRefused("too_deep", prefix.rstrip("/"))
    with os.scandir(src) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        if only is not None and depth == 0 and name not in only:
            continue
        shown = prefix + name
        _check_name(name, shown)
        seen = os.lstat(name, dir_fd=src)
        reason = _kind(seen.st_mode)
        if reason is not None:
            raise OutputRefused(reason, shown)
        if stat.S_ISDIR(seen.st_mode):
            if only is not None:  # a named file that is a folder
                raise OutputRefused("special", shown)
            budget.count_file(shown)
            child = _open_dir(name, src, shown)
            try:
                if (os.fstat(child).st_dev, os.fstat(child).st_ino) != (seen.st_dev, seen.st_ino):
                    raise OutputRefused("swapped", shown)
                os.mkdir(name, 0o700, dir_fd=dst)
                made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
                try:
                    _walk(child, made, shown + "/", depth + 1, budget, taken, None)
                finally:
                    os.close(made)
            finally:
                os.close(child)
            continue
        if seen.st_nlink != 1:
            raise OutputRefused("hardlink", shown)
        budget.count_file(shown)
        if seen.st_size > budget.left():
            raise OutputRefused("too_large", shown)
        fd = _open_file(src, name, seen, shown)
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=dst)
            try:
                size = _read(fd, budget, shown, lambda block: _write_all(out, block))
            finally:
                os.close(out)
        finally:
            os.close(fd)
        taken.append(Taken(shown, size))


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view):]


def read_file(path: Path, *, max_bytes: int) -> bytes:
    """One file a job or submission wrote (`path`: in a folder it could write), read as data:
    refused as `collect` refuses, and never past `max_bytes`."""
    chunks: list[bytes] = []
    _take_file(Path(path), max_bytes, chunks.append)
    return b"".join(chunks)


def copy_file(path: Path, target: Path, *, max_bytes: int) -> int:
    """`read_file`, streamed into `target` (a new file); returns its size."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        return _take_file(Path(path), max_bytes, lambda block: _write_all(out, block))
    finally:
        os.close(out)


def _take_file(path: Path, max_bytes: int, sink) -> int:
    folder = _open_dir(path.parent, None, path.parent.name)
    try:
        try:
            seen = os.lstat(path.name, dir_fd=folder)
        except FileNotFoundError:
            raise OutputRefused("missing", path.name) from None
        reason = _kind(seen.st_mode) or ("special" if stat.S_ISDIR(seen.st_mode) else None)
        if reason is not None:
            raise OutputRefused(reason, path.name)
        if seen.st_nlink != 1:
            raise OutputRefused("hardlink", path.name)
        if seen.st_size > max_bytes:
            raise OutputRefused("too_large", path.name)
        fd = _open_file(folder, path.name, seen, path.name)
        try:
            return _read(fd, _Budget(Caps(max_bytes=max_bytes, max_files=1)), path.name, sink)
        finally:
            os.close(fd)
    finally:
        os.close(folder)
