"""A failed run's reason is a fixed category (sandbox.failures), whatever the job printed or
raised, and its log is masked before a steward reads it (sandbox.redact). Real tracebacks come
from running scripts with the interpreter, as the jail does; forged ones from printing them."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sandbox import failures, redact
from sandbox.isolation import Limits, Outcome

pytestmark = pytest.mark.sandbox

ROWS = ["R000000123,B00000042,70.25560106090109,3500.0,1956", "R000000124,B00000042,81.0912345678,4100.0,1987"]
LIMITS = Limits(memory_mb=2048, cpu_seconds=60, wall_seconds=120, processes=32)


def run(tmp_path, code: str) -> tuple[Outcome, str, int]:
    """`code` run as the jail runs a script; its outcome, the script's path and line count."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    log = done.stdout + done.stderr
    outcome = Outcome(ok=done.returncode == 0, reason="" if done.returncode == 0 else "error",
                      message=f"the job exited with status {done.returncode}", exit_code=done.returncode,
                      seconds=0.1, log=log)
    return outcome, str(script), len(script.read_text().splitlines())


def assert_says_nothing_private(text: str) -> None:
    for row in ROWS:
        for value in row.split(","):
            assert value not in text, (value, text)


def test_an_exception_full_of_rows_becomes_its_class_and_line(tmp_path):
    outcome, script, lines = run(tmp_path, f"""
        rows = {ROWS!r}
        print(*rows)
        import sys; print(*rows, file=sys.stderr)
        raise ValueError("\\n".join(rows))
    """)
    assert "R000000123" in outcome.log  # the log has them: it is what the job printed
    reason = failures.reason(outcome, LIMITS, script=script, script_lines=lines)
    assert reason == "the script raised ValueError (line 5)"
    assert failures.reason(outcome, LIMITS, script=script, script_lines=lines, show_line=False) == \
        "the script raised ValueError"


def test_a_class_named_after_a_row_and_a_chained_exception(tmp_path):
    outcome, script, lines = run(tmp_path, """
        Leak = type("R000000123_70_2556", (Exception,), {})
        try:
            {}["x"]
        except KeyError:
            raise Leak("B00000042")
    """)
    reason = failures.reason(outcome, LIMITS, script=script, script_lines=lines)
    assert reason == "the script raised an exception of its own class (line 6)"
    assert_says_nothing_private(reason)


def test_library_errors_keep_their_class_and_the_applicants_line(tmp_path):
    outcome, script, lines = run(tmp_path, """
        import pyarrow as pa
        pa.array(["R000000123"]).cast(pa.int64())
    """)
    assert failures.reason(outcome, LIMITS, script=script, script_lines=lines) == \
        "the script raised ArrowInvalid (line 3)"


def test_exit_with_a_message_or_a_forged_traceback_says_no_more(tmp_path):
    outcome, script, lines = run(tmp_path, f"import sys\nsys.exit({ROWS[0]!r})\n")
    assert failures.reason(outcome, LIMITS, script=script, script_lines=lines) == \
        "the script exited with an error status"
    forged = f"""
        import sys
        print("Traceback (most recent call last):")
        print('  File "{tmp_path / 'job.py'}", line 70255, in <module>')
        print("R000000123_leak: boom")
        sys.exit(3)
    """
    outcome, script, lines = run(tmp_path, forged)
    reason = failures.reason(outcome, LIMITS, script=script, script_lines=lines)
    assert reason == "the script raised an exception of its own class"  # line 70255 is not in the script
    assert_says_nothing_private(reason)


def test_limits_and_the_jails_refusals_are_named_with_the_jobs_own_limits():
    def outcome(kind, code=1):
        return Outcome(False, kind, f"MILIAO-JAIL: {ROWS[0]}", code, 1.0, f"MILIAO-JAIL: {ROWS[0]}")

    said = {kind: failures.reason(outcome(kind), LIMITS) for kind in
            ("memory", "cpu_time", "wall_clock", "processes", "network", "filesystem", "isolation")}
    assert said["memory"] == "stopped at the memory limit (2048 MB)"
    assert said["cpu_time"] == "stopped at the CPU time limit (60 s)"
    assert said["wall_clock"] == "stopped at the wall-clock limit (120 s)"
    assert said["processes"] == "stopped at the process limit (32 processes and threads)"
    assert said["network"].startswith("network access refused")
    assert failures.reason(outcome("killed", 137), LIMITS) == "killed by SIGKILL"
    for text in said.values():
        assert_says_nothing_private(text)
    assert_says_nothing_private(failures.crashed(ValueError(ROWS[0])))


def test_a_log_is_masked_for_the_steward_but_keeps_its_traceback_lines(tmp_path):
    import pyarrow as pa

    outcome, script, _ = run(tmp_path, f"""
        rows = {ROWS!r}
        print(rows, "dGhpcyBpcyBhIHNlY3JldCByb3cgb2YgZGF0YQ12")
        raise ValueError(rows[0])
    """)
    private = pa.table({"unit_id": [f"R{i:09d}" for i in range(100, 200)],
                        "grid_code": [f"GSZ{i:06d}X" for i in range(100)], "district": ["黄浦区"] * 100})
    masked = redact.mask(outcome.log, redact.private_values(private))
    assert_says_nothing_private(masked)
    assert "dGhpcyBpcyBhIHNlY3JldCByb3cgb2YgZGF0YQ12" not in masked and redact.MASK_ENCODED in masked
    assert ", line 4, in <module>" in masked and "ValueError: ‹value›,‹id›,‹n›" in masked
    assert redact.mask("GSZ000012X near 黄浦区", redact.private_values(private)) == "‹value› near 黄浦区"
    training = redact.mask("epoch 3 loss 0.4321 unit R000000123", numbers=False)
    assert training == "epoch 3 loss 0.4321 unit ‹id›"
