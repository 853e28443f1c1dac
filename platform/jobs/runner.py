"""Running an approved job in the worker: charge the budget, lay out its read-only data, run
it isolated (centralized) or on the Flower deployment (federated), check the output, and
hand the result to jobs.actions. The Celery task in jobs.tasks calls `run_job`.

What the run wrote crosses into the platform only through sandbox.outputs (regular files,
capped). A failure's reason, the task row and the events get fixed categories
(sandbox.failures); the run's log, masked (sandbox.redact), and the detail are kept for the
data owner's stewards."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext_noop

from kernel.errors import Conflict
from progress.actions import fail_task, run_tracked
from sandbox import checks, failures, outputs
from sandbox.federated.run import read_rounds
from sandbox.isolation import REPO, IsolationUnavailable, Limits, run_isolated

from . import actions, data
from .models import Job, JobKind, JobStatus
from .outcomes import JobFailed, outcome_dict, steward_log

log = logging.getLogger(__name__)
CENTRALIZED = REPO / "sandbox" / "jobs" / "centralized.py"
MODEL_FILES = {"model.pt", "result.json"}
RESULT_MAX_BYTES = 1 << 20  # a training script's result.json


def _task_error(exc: BaseException) -> str:
    """What a failed job's task row says: the failure's category (JobFailed's message, never its
    class name), or for anything else the crash's words, which quote none of the job's files."""
    return str(exc) if isinstance(exc, JobFailed) else failures.crashed(exc)


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
    result: dict = {}

    def work(report) -> dict:
        try:
            result.update(_run(job, report))
        except JobFailed:
            raise
        except Exception as exc:  # a bug or a lost dependency: its message may quote the job's files
            log.exception("job %s crashed", job.pk)
            raise JobFailed(failures.crashed(exc), detail=f"{type(exc).__name__}: {exc}") from exc
        return {"job": job.pk}  # the task row holds nothing of the run's: the job's page says the rest

    try:
        run_tracked(task_id, work, reason=_task_error)
        spent = actions.spent_of(job, result["privacy"])
    except JobFailed as exc:
        remove_working_folders(actions.job_dir(job), keep_output=False)
        spent = job.epsilon if exc.touched else Decimal(0)
        actions.settle_charge(job, spent)
        actions.fail_job(job_id=job.pk, reason=str(exc), outcome=exc.outcome,
                         log=steward_log(exc.log, exc.detail, values=exc.values, numbers=job.kind == JobKind.CODE),
                         spent=spent if exc.touched else None)
        return
    except Exception as exc:  # an unaccountable result: charged in full
        log.exception("job %s could not be settled", job.pk)
        remove_working_folders(actions.job_dir(job), keep_output=False)
        fail_task(task_id, failures.crashed(exc))
        actions.fail_job(job_id=job.pk, reason=failures.crashed(exc), spent=job.epsilon,
                         log=steward_log(result.get("log", ""), type(exc).__name__,
                                         numbers=job.kind == JobKind.CODE))
        return
    actions.settle_charge(job, spent)
    actions.finish_job(job=job, result=result)


def remove_working_folders(root: Path, *, keep_output: bool = True) -> None:
    """Everything of a run but its held output: the data laid out for it, its work folders,
    the jail's control files. A failed run keeps nothing. Never fails the job: what cannot be
    removed (a Flower process still writing its state while it stops) is logged and left."""
    if not root.is_dir():
        return
    for path in list(root.iterdir()):
        if keep_output and path.name == "output" and path.is_dir() and not path.is_symlink():
            continue
        for attempt in range(3):
            try:
                if path.is_dir() and not path.is_symlink():
                    for folder, _, _ in os.walk(path):  # sealed folders are read-only; links are not followed
                        os.chmod(folder, 0o755)
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                break
            except OSError as exc:
                if attempt == 2:
                    log.warning("job folder %s not removed: %s", path, exc)
                else:
                    time.sleep(0.5)
    try:
        root.rmdir()
    except OSError:  # the held output, or what could not be removed
        pass


def _run(job: Job, report) -> dict:
    root = actions.job_dir(job)
    if root.exists():  # a retried task starts from clean folders
        data.unseal(root)
        shutil.rmtree(root)
    try:
        return _run_in(job, root, report)
    finally:  # before the job is seen to end: once its output is held, nothing else stays
        remove_working_folders(root)


def _run_in(job: Job, root: Path, report) -> dict:
    if job.kind == JobKind.CODE:
        from . import code_jobs

        return code_jobs.run(job, root, report)
    report(2, gettext_noop("preparing data"))
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
    result["log"] = steward_log(result.get("log", ""), numbers=False)  # the platform's own script's log
    return _hold_output(job, root, result)


def _centralized(job: Job, root: Path, report) -> dict:
    work = root / "work"
    progress = work / "progress.jsonl"
    epochs = job.params["epochs"]

    def watch() -> None:
        history = read_rounds(progress)
        if history:
            actions.report_progress(job, history)
            report(5 + 90 * history[-1]["step"] / epochs, gettext_noop("epoch %(epoch)s of %(epochs)s"),
                   epoch=history[-1]["step"], epochs=epochs)

    limits = Limits(**job.limits)
    try:
        outcome = run_isolated(CENTRALIZED, data=root / "data", work=work, limits=limits,
                               args=[str(root / "data")], watch=watch, live=[progress.name])
    except IsolationUnavailable as exc:
        raise JobFailed("not run: the isolation this job needs is not available on the worker", detail=str(exc),
                        touched=False) from None
    if not outcome.ok:  # the platform's own script: its class and line, never its message
        reason = failures.reason(outcome, limits, script=str(CENTRALIZED.resolve()),
                                 script_lines=len(CENTRALIZED.read_text().splitlines()))
        raise JobFailed(reason, detail=outcome.message, outcome=outcome_dict(outcome, reason), log=outcome.log)
    try:
        result = json.loads(outputs.read_file(work / "result.json", max_bytes=RESULT_MAX_BYTES))
    except (outputs.OutputRefused, ValueError) as exc:
        raise JobFailed("the training wrote no readable result", detail=str(exc), log=outcome.log) from None
    return {"privacy": result["privacy"], "history": result["history"], "metrics": result["metrics"],
            "outcome": {**outcome_dict(outcome), "device": result["device"]}, "log": outcome.log}


def _hold_output(job: Job, root: Path, result: dict) -> dict:
    """Take what may leave out of the job's writable folder into `output/` (regular files
    only, sandbox.outputs), sealed, with the automatic checks the steward reads before deciding."""
    work, output = root / "work", root / "output"
    try:
        outputs.collect(work, output, data.output_caps(job.dataset), only=MODEL_FILES, required={"model.pt"})
    except outputs.OutputRefused as exc:
        raise JobFailed(exc.public, detail=str(exc), outcome=result.get("outcome"), log=result.get("log", "")) \
            from None
    result["checks"] = checks.model_checks(output, epsilon=float(job.epsilon), privacy=result["privacy"],
                                          metrics=result["metrics"])
    result["output_sha256"] = hashlib.sha256((output / "model.pt").read_bytes()).hexdigest()
    result["output_path"] = str(output.relative_to(settings.STATE_DIR))
    data.seal(output)
    result["privacy"] = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in result["privacy"].items()}
    return result
