"""Evaluating submissions in the worker: each runs in the jail on a hidden test part's
features only (sandbox.challenge), and its predictions are scored here against the labels,
which never enter the jail. Public parts score submissions as they come; the private part
scores each team's final at the close.

A submission needs no approval, so nothing it wrote reaches its team: its predictions come
across as data (sandbox.outputs: a regular file, capped), a failure is a fixed category
(sandbox.failures: no line numbers, no message, no log), and the task row holds neither the
failure's text nor the exact score (the team reads the Ladder's)."""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.utils.translation import gettext_noop

from kernel.paths import state_path
from progress.actions import run_tracked
from sandbox import challenge as evaluation
from sandbox import failures, outputs
from sandbox import tasks as sandbox_tasks
from sandbox.isolation import REPO, IsolationUnavailable, Limits, run_isolated

from . import actions, queries
from .models import Challenge, Submission, SubmissionKind

log = logging.getLogger(__name__)
EVALUATE = REPO / "sandbox" / "jobs" / "evaluate.py"
LIMITS = Limits(cpu_seconds=300, memory_mb=4096, wall_seconds=600, processes=64, output_mb=64, threads=2,
                disk_mb=64, files=1000)  # predictions.csv, read here, is at most 64 MB


class EvaluationFailed(Exception):
    pass


def hidden_part(challenge: Challenge, which: str) -> pa.Table:
    """The public or private part of the challenge's hidden rooms (with their labels)."""
    task = sandbox_tasks.task_named(challenge.task)
    table = pq.read_table(state_path(challenge.hidden_corpus.path), columns=sandbox_tasks.COLUMNS)
    public, private = evaluation.split(evaluation.hidden_rooms(table, task), challenge.spec["salt"])
    return public if which == "public" else private


def evaluate(submission: Submission, part: pa.Table, work: Path) -> float:
    """Run the submission in the jail on `part`'s features; score what it predicted. The
    folder (the hidden part's features, what the submission wrote) is removed afterwards,
    whatever the result."""
    if work.exists():
        shutil.rmtree(work)
    try:
        return _evaluate(submission, part, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _evaluate(submission: Submission, part: pa.Table, work: Path) -> float:
    challenge = submission.challenge
    data = work / "data"
    evaluation.write_inputs(data, part, {"task": challenge.task, "neighbourhoods": challenge.spec["neighbourhoods"]})
    source = state_path(submission.path)
    if submission.kind == SubmissionKind.WEIGHTS:
        outputs.copy_file(source, data / evaluation.WEIGHTS_FILE, max_bytes=actions.SUBMISSION_BYTES_MAX)
        script, args = EVALUATE, [str(data)]
    else:
        code = work / "code"
        code.mkdir()
        script = code / "predict.py"
        outputs.copy_file(source, script, max_bytes=actions.CODE_MAX_BYTES)
        args = [str(data / evaluation.FEATURES_FILE)]
    try:
        outcome = run_isolated(script, data=data, work=work / "out", limits=LIMITS, args=args)
    except IsolationUnavailable as exc:
        log.warning("submission %s not evaluated: %s", submission.pk, exc)
        raise EvaluationFailed("not evaluated: the isolation scoring needs is not available on the worker") from None
    if not outcome.ok:
        # Unreviewed code: the class of its exception, never the line (a line the code chose
        # would carry what it read) nor the message.
        raise EvaluationFailed(failures.reason(outcome, LIMITS, script=str(script.resolve()), show_line=False)
                               if submission.kind == SubmissionKind.CODE else
                               "the weights could not be evaluated "
                               f"({failures.reason(outcome, LIMITS, script=str(EVALUATE), show_line=False)})")
    try:  # the predictions as data: a link, a FIFO or a device in their place is refused
        outputs.collect(work / "out", work / "held", outputs_caps(), only={evaluation.PREDICTIONS_FILE},
                        required={evaluation.PREDICTIONS_FILE})
    except outputs.OutputRefused as exc:
        raise EvaluationFailed(f"{evaluation.PREDICTIONS_FILE}: {exc.public}") from None
    try:
        predictions = evaluation.read_predictions(work / "held" / evaluation.PREDICTIONS_FILE, part)
    except ValueError as exc:  # fixed words: read_predictions never quotes the file
        raise EvaluationFailed(str(exc)) from None
    try:
        value = evaluation.score(sandbox_tasks.task_named(challenge.task), predictions, part)
    except (ValueError, TypeError, pa.ArrowException):  # arrow's message would quote a prediction
        raise EvaluationFailed(f"{evaluation.PREDICTIONS_FILE}: the predictions are not of the task's kind "
                               "(a use's name, or a rent in yuan)") from None
    if not math.isfinite(value):
        raise EvaluationFailed("the predictions are not all finite numbers")
    return value


def outputs_caps() -> outputs.Caps:
    """What one submission's evaluation may bring out of its folder: one predictions file."""
    return outputs.Caps(max_bytes=settings.MILIAO_SUBMISSION_OUTPUT_MAX_BYTES, max_files=1)


def _work(submission: Submission, which: str) -> Path:
    return state_path("innovation") / "evaluations" / f"{submission.pk}-{which}"


def _tracked(task_id: str, work, what: str, *, commit, on_crash) -> None:
    """`run_tracked`, whose `commit` records the result in the transaction that marks the
    task succeeded (so whoever sees it succeeded sees the result); a crash fails the task
    with a reason that quotes nothing the submission wrote and calls `on_crash(reason)`. The
    crash ends here, in the log: the worker's task has nothing left to do."""
    try:
        run_tracked(task_id, work, commit=commit, reason=failures.crashed, on_failure=on_crash)
    except Exception:
        log.exception("%s crashed", what)


def score_submission(task_id: str, submission_id: int) -> None:
    submission = Submission.objects.select_related("challenge__hidden_corpus").get(pk=submission_id)

    evaluated: dict = {}

    def work(report) -> dict:
        report(10, gettext_noop("evaluating on the public test part"))
        try:
            evaluated["score"] = evaluate(submission, hidden_part(submission.challenge, "public"),
                                          _work(submission, "public"))
        except EvaluationFailed as exc:
            evaluated["error"] = str(exc)
        # The task row (the team's to read) holds neither: the exact score is the bureau's, the
        # reason is on the submission.
        return {"submission": submission_id, "scored": "score" in evaluated}

    def commit(result: dict) -> None:
        if "error" in evaluated:
            actions.fail_submission(submission_id=submission_id, reason=evaluated["error"])
        else:
            actions.record_score(submission_id=submission_id, score=evaluated["score"])

    _tracked(task_id, work, f"scoring submission {submission_id}", commit=commit,
             on_crash=lambda reason: actions.fail_submission(submission_id=submission_id, reason=reason))


def score_finals(task_id: str, challenge_id: int) -> None:
    challenge = Challenge.objects.select_related("hidden_corpus").get(pk=challenge_id)

    def work(report) -> dict:
        finals = queries.finals(challenge)
        private = hidden_part(challenge, "private")
        scores = {}
        for n, submission in enumerate(finals):
            report(100 * n / max(len(finals), 1), gettext_noop("final %(n)s of %(total)s on the private part"),
                   n=n + 1, total=len(finals))
            try:
                scores[str(submission.pk)] = evaluate(submission, private, _work(submission, "private"))
            except EvaluationFailed as exc:  # a final that fails now ranks last, without a score
                log.warning("final %s failed on the private part: %s", submission.pk, exc)
                scores[str(submission.pk)] = None
        return {"scores": scores}

    _tracked(task_id, work, f"closing challenge {challenge_id}",
             commit=lambda result: actions.record_private_board(
                 challenge_id=challenge_id, scores={int(k): v for k, v in result["scores"].items()}),
             on_crash=lambda reason: actions.fail_close(challenge_id=challenge_id, reason=reason))
