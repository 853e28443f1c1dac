"""Running an approved job in the worker: charge the budget, lay out its read-only data, run
it isolated (centralized) or on the Flower deployment (federated), check the output, and
hand the result to jobs.actions. The Celery task in jobs.tasks calls `run_job`."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from miliao.errors import Conflict
from progress.actions import fail_task, run_tracked
from sandbox import checks
from sandbox.federated.run import read_rounds
from sandbox.isolation import REPO, IsolationUnavailable, Limits, Outcome, run_isolated

from . import actions, data
from .models import Job, JobKind, JobStatus

log = logging.getLogger(__name__)
CENTRALIZED = REPO / "sandbox" / "jobs" / "centralized.py"
MODEL_FILES = {"model.pt", "result.json"}


class JobFailed(Exception):
    """The run ended without a releasable output; `touched` says whether it ran on the data."""

    def __init__(self, message: str, *, outcome: dict | None = None, log: str = "", touched: bool = True):
        super().__init__(message)
        self.outcome, self.log, self.touched = outcome or {}, log, touched


def run_job(task_id: str, job_id: int) -> None:
    job = Job.objects.select_related("dataset", "organisation", "corpus", "submitted_by").get(pk=job_id)
    if job.status not in (JobStatus.APPROVED, JobStatus.RUNNING):
        log.info("job %s is %s; nothing to run", job.pk, job.status)
        return
    if job.syft_dataset_id:  # PySyft's side followed the approval's commit; one missed then is made now
        try:
            actions.sync_syft_job(job)
        except Exception:
            log.exception("job %s: its PySyft job could not be prepared", job.pk)
            actions.fail_job(job_id=job.pk, reason="refused before it ran: its PySyft job could not be prepared")
            fail_task(task_id, "its PySyft job could not be prepared")
            return
    try:
        entry = actions.charge(job)
    except Conflict as exc:  # the budget ran out between submission and start
        actions.fail_job(job_id=job.pk, reason=f"refused before it ran: {exc}")
        fail_task(task_id, str(exc))
        return
    if job.status == JobStatus.APPROVED:
        job = actions.start_job(job=job, entry=entry)
    try:
        result = run_tracked(task_id, lambda report: _run(job, report)).result
        spent = actions.spent_of(job, result["privacy"])
    except JobFailed as exc:
        spent = job.epsilon if exc.touched else Decimal(0)
        actions.settle_charge(job, spent)
        actions.fail_job(job_id=job.pk, reason=str(exc), outcome=exc.outcome, log=exc.log,
                         spent=spent if exc.touched else None)
        return
    except Exception as exc:  # a bug, a lost dependency or an unaccountable result: charged in full
        log.exception("job %s crashed", job.pk)
        fail_task(task_id, f"{type(exc).__name__}: {exc}")
        actions.fail_job(job_id=job.pk, reason=f"{type(exc).__name__}: {exc}", spent=job.epsilon)
        return
    actions.settle_charge(job, spent)
    actions.finish_job(job=job, result=result)


def _run(job: Job, report) -> dict:
    root = actions.job_dir(job)
    if root.exists():  # a retried task starts from clean folders
        data.unseal(root)
        shutil.rmtree(root)
    if job.kind == JobKind.CODE:
        from . import code_jobs

        return code_jobs.run(job, root, report)
    report(2, "preparing data")
    try:
        summary = data.training_data(job, root / "data")
    except ValueError as exc:
        raise JobFailed(str(exc), touched=False) from None
    if job.kind == JobKind.CENTRALIZED:
        result = _centralized(job, root, report)
    elif job.kind == JobKind.FEDERATED:
        from . import federated

        result = federated.run(job, root, summary, report)
    result["metrics"] = {**result.get("metrics", {}), "baseline": summary["baseline"],
                         "train_rows": summary["train_rows"], "test_rows": summary["test_rows"]}
    return _hold_output(job, root, result)


def _centralized(job: Job, root: Path, report) -> dict:
    work = root / "work"
    progress = work / "progress.jsonl"
    epochs = job.params["epochs"]

    def watch() -> None:
        history = read_rounds(progress)
        if history:
            actions.report_progress(job, history)
            report(5 + 90 * history[-1]["step"] / epochs, f"epoch {history[-1]['step']}/{epochs}")

    try:
        outcome = run_isolated(CENTRALIZED, data=root / "data", work=work, limits=Limits(**job.limits),
                               args=[str(root / "data")], watch=watch)
    except IsolationUnavailable as exc:
        raise JobFailed(f"not run: {exc}", touched=False) from None
    if not outcome.ok:
        raise JobFailed(outcome.message, outcome=outcome_dict(outcome), log=outcome.log)
    result = json.loads((work / "result.json").read_text())
    return {"privacy": result["privacy"], "history": result["history"], "metrics": result["metrics"],
            "outcome": {**outcome_dict(outcome), "device": result["device"]}, "log": outcome.log}


def outcome_dict(outcome: Outcome) -> dict:
    return {k: v for k, v in outcome.to_dict().items() if k != "log"}


def _hold_output(job: Job, root: Path, result: dict) -> dict:
    """Copy what may leave out of the job's writable folder into `output/`, sealed, with the
    automatic checks the steward reads before deciding."""
    work, output = root / "work", root / "output"
    output.mkdir()
    for name in MODEL_FILES:
        if (work / name).is_file():
            shutil.copyfile(work / name, output / name)
    result["checks"] = checks.model_checks(output, epsilon=float(job.epsilon), privacy=result["privacy"],
                                          metrics=result["metrics"])
    result["output_sha256"] = hashlib.sha256((output / "model.pt").read_bytes()).hexdigest()
    result["output_path"] = str(output.relative_to(settings.STATE_DIR))
    data.seal(output)
    result["privacy"] = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in result["privacy"].items()}
    return result
