"""Evaluating submissions in the worker: each runs in the jail on a hidden test part's
features only (sandbox.challenge), and its predictions are scored here against the labels,
which never enter the jail. Public parts score submissions as they come; the private part
scores each team's final at the close."""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from progress.actions import fail_task, run_tracked
from sandbox import challenge as evaluation
from sandbox import tasks as sandbox_tasks
from sandbox.isolation import REPO, IsolationUnavailable, Limits, run_isolated

from . import actions
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
    table = pq.read_table(Path(settings.STATE_DIR) / challenge.hidden_corpus.path, columns=sandbox_tasks.COLUMNS)
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
    source = Path(settings.STATE_DIR) / submission.path
    if submission.kind == SubmissionKind.WEIGHTS:
        shutil.copyfile(source, data / evaluation.WEIGHTS_FILE)
        script, args = EVALUATE, [str(data)]
    else:
        code = work / "code"
        code.mkdir()
        script = code / "predict.py"
        shutil.copyfile(source, script)
        args = [str(data / evaluation.FEATURES_FILE)]
    try:
        outcome = run_isolated(script, data=data, work=work / "out", limits=LIMITS, args=args)
    except IsolationUnavailable as exc:
        raise EvaluationFailed(f"not evaluated: {exc}") from None
    if not outcome.ok:
        raise EvaluationFailed(f"the submission stopped: {outcome.message}")
    try:
        predictions = evaluation.read_predictions(work / "out" / evaluation.PREDICTIONS_FILE, part)
        value = evaluation.score(sandbox_tasks.task_named(challenge.task), predictions, part)
    except ValueError as exc:
        raise EvaluationFailed(str(exc)) from None
    if not math.isfinite(value):
        raise EvaluationFailed("the predictions are not all finite numbers")
    return value


def _work(submission: Submission, which: str) -> Path:
    return Path(settings.STATE_DIR) / "innovation" / "evaluations" / f"{submission.pk}-{which}"


def _tracked(task_id: str, work, what: str, *, commit, on_crash) -> None:
    """`run_tracked`, whose `commit` records the result in the transaction that marks the
    task succeeded (so whoever sees it succeeded sees the result); a crash fails the task
    and calls `on_crash(reason)`."""
    try:
        run_tracked(task_id, work, commit=commit)
    except Exception as exc:
        log.exception("%s crashed", what)
        reason = f"{type(exc).__name__}: {exc}"
        fail_task(task_id, reason)  # also where the crash came before `work` ran
        on_crash(reason)


def score_submission(task_id: str, submission_id: int) -> None:
    submission = Submission.objects.select_related("challenge__hidden_corpus").get(pk=submission_id)

    def work(report) -> dict:
        report(10, "evaluating on the public test part")
        try:
            return {"score": evaluate(submission, hidden_part(submission.challenge, "public"),
                                      _work(submission, "public"))}
        except EvaluationFailed as exc:
            return {"error": str(exc)}

    def commit(result: dict) -> None:
        if "error" in result:
            actions.fail_submission(submission_id=submission_id, reason=result["error"])
        else:
            actions.record_score(submission_id=submission_id, score=result["score"])

    _tracked(task_id, work, f"scoring submission {submission_id}", commit=commit,
             on_crash=lambda reason: actions.fail_submission(submission_id=submission_id, reason=reason))


def score_finals(task_id: str, challenge_id: int) -> None:
    challenge = Challenge.objects.select_related("hidden_corpus").get(pk=challenge_id)

    def work(report) -> dict:
        finals = actions.finals(challenge)
        private = hidden_part(challenge, "private")
        scores = {}
        for n, submission in enumerate(finals):
            report(100 * n / max(len(finals), 1), f"final {n + 1} of {len(finals)} on the private part")
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
