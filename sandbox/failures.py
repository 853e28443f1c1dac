"""Why a jailed run failed, in words an applicant may read.

A failed run's log is what the job wrote (its prints, its exception's message), so it may hold
private rows; the reason shown to the applicant, kept on tasks and written into events is
therefore a fixed category built by the platform, never a line of the log:

- a limit: `stopped at the memory limit (4096 MB)`, the figure being the job's own limit;
- the jail's refusals: `network access refused: jobs have no network`, ...;
- an exception: `the script raised ValueError (line 12)`: the exception's class only when it
  is one of Python's or pyarrow's own (a class the job made could be named after a row), and
  the line only where it is a line of the applicant's own script (its last frame there);
- anything else: `the script exited with an error status`.

The log is parsed, not trusted: a job can print a forged traceback, and then gets a reason of
the same grammar, so what it can say through the reason is bounded by the grammar (see
`sandbox/README.md` for the figures).
"""
from __future__ import annotations

import builtins
import re
import signal

from .isolation import Limits, Outcome

ARROW_ERRORS = {"ArrowException", "ArrowInvalid", "ArrowTypeError", "ArrowKeyError", "ArrowIndexError",
                "ArrowNotImplementedError", "ArrowMemoryError", "ArrowIOError", "ArrowCapacityError",
                "ArrowSerializationError", "ArrowCancelled"}
BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)}
SIGNALS = {s.value: s.name for s in signal.Signals}

_TRACEBACK = "Traceback (most recent call last):"
_FRAME = re.compile(r'^  File "(?P<path>[^"]*)", line (?P<line>\d{1,7})(?:, in .*)?$')
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.]{0,200})(?::.*)?$")


def raised(log: str, script: str) -> tuple[str | None, int | None] | None:
    """(exception class, line in `script`) of the last traceback in `log`, or None when it
    holds none. The class is None when it is not one of Python's or pyarrow's own; the line
    None when no frame of the traceback is in `script`."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line == _TRACEBACK]
    if not starts:
        return None
    line_no = None
    for line in lines[starts[-1] + 1:]:
        frame = _FRAME.match(line)
        if frame:
            if frame["path"] == script:
                line_no = int(frame["line"])
            continue
        if not line.strip() or line.startswith((" ", "\t")):
            continue  # source lines, carets, notes
        match = _EXCEPTION.match(line)
        if match is None:
            return None
        name = match["name"]
        module, _, short = name.rpartition(".")
        known = (not module and short in BUILTIN_ERRORS) or (module == "pyarrow.lib" and short in ARROW_ERRORS)
        return (short if known else None), line_no
    return None


def reason(outcome: Outcome, limits: Limits, *, script: str = "", script_lines: int = 0,
           show_line: bool = True) -> str:
    """The fixed category of a failed run. `script` is the applicant's script as the jail ran
    it (its path), `script_lines` how many lines it has: a line outside it is not shown;
    `show_line` False leaves lines out altogether (unreviewed code: challenge submissions)."""
    kind = outcome.reason
    if kind == "wall_clock":
        return f"stopped at the wall-clock limit ({limits.wall_seconds} s)"
    if kind == "cpu_time":
        return f"stopped at the CPU time limit ({limits.cpu_seconds} s)"
    if kind == "memory":
        return f"stopped at the memory limit ({limits.memory_mb} MB)"
    if kind == "processes":
        return f"stopped at the process limit ({limits.processes} processes and threads)"
    if kind == "network":
        return "network access refused: jobs have no network"
    if kind == "filesystem":
        return "file access refused: the job read or wrote outside its data and work folders"
    if kind == "isolation":
        return "not run: the isolation could not be set up"
    if kind == "killed":
        code = outcome.exit_code or 0
        signum = code - 128 if code > 128 else -code
        return f"killed by {SIGNALS.get(signum, 'a signal')}"
    found = raised(outcome.log, script) if script else None
    if found is None:
        return "the script exited with an error status"
    name, line = found
    what = f"the script raised {name}" if name else "the script raised an exception of its own class"
    if show_line and line is not None and 0 < line <= script_lines:
        what += f" (line {line})"
    return what


def crashed(exc: BaseException) -> str:
    """A failure of the platform's own code around a run (a bug, a lost dependency): its class
    only, since its message may quote what the job wrote."""
    return f"the platform could not finish the run ({type(exc).__name__}); the data owner's stewards can see why"
