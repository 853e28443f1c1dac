"""Running an approved code-to-data job: PySyft's runner executes the applicant's script in
the jail on the published dataset's private part (sandbox.code_to_data), then the output is
made releasable under the policy the job was submitted with:

- `dp`: the script wrote per-record contributions; they are checked, the script is run again
  on a random half of the rows to check that each record's contribution is its own, and the
  platform releases OpenDP aggregates of them (sandbox.dp_aggregates), charged at OpenDP's ε;
- `reviewed`: the script's files are held as they are for the steward, charged the job's ε
  by policy (they carry no DP guarantee).

Either way the held output gets the automatic checks (size, private identifiers or rows in it,
small counts, encoded content) before a steward sees it. The job's files come across only
through sandbox.outputs; a failure is reported as a fixed category (sandbox.failures), and the
log is kept masked (sandbox.redact).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.utils.translation import gettext_noop

from sandbox import checks, code_to_data, dp_aggregates, failures, outputs, redact
from sandbox.isolation import IsolationUnavailable, Limits

from . import actions, data
from .models import Job

HALF_SEED = 0x5EED


def run(job: Job, root: Path, report) -> dict:
    from .outcomes import JobFailed, outcome_dict, steward_log

    published = data.published(job.syft_dataset)
    limits = Limits(**job.limits)
    caps = data.output_caps(job.dataset)
    dp = job.params["outputs"] == "dp"
    full = code_to_data.private_table(published.box, owner=published.owner, name=published.name)
    values = redact.private_values(full)  # masked in the log the stewards read
    script = code_to_data.job(data.jobs_box(), owner=published.owner,
                              job_name=actions.syft_job_name(job)).code_dir / code_to_data.ENTRYPOINT

    def failed(reason: str, *, detail: str = "", outcome=None, log: str = "") -> JobFailed:
        return JobFailed(reason, detail=detail, outcome=outcome, log=log, values=values)

    def why(outcome) -> str:  # the fixed category of a failed run of the applicant's script
        return failures.reason(outcome, limits, script=str(script.resolve()), script_lines=len(job.code.splitlines()))

    report(5, gettext_noop("running the job's code on the private rows"))
    try:
        outcome, held, refused = code_to_data.run(
            data.jobs_box(), owner=published.owner, job_name=actions.syft_job_name(job), dataset=published,
            work=root / "work", limits=limits, caps=caps)
    except IsolationUnavailable as exc:
        raise JobFailed("not run: the isolation this job needs is not available on the worker", detail=str(exc),
                        touched=False) from None
    if not outcome.ok:
        reason = why(outcome)
        raise failed(reason, detail=f"{outcome.message} (exit status {outcome.exit_code})",
                     outcome=outcome_dict(outcome, reason), log=outcome.log)
    public_outcome = outcome_dict(outcome)
    if refused is not None:
        raise failed(refused.public, detail=str(refused), outcome={**public_outcome, "ok": False,
                                                                   "message": refused.public}, log=outcome.log)
    output = root / "output"
    output.mkdir()
    private = full.select([c for c in (*checks.IDENTIFIER_COLUMNS, *checks.VERBATIM_COLUMNS) if c in full.column_names])
    result = {"history": [], "metrics": {"private_rows": published.private_rows},
              "outcome": public_outcome, "log": steward_log(outcome.log, values=values)}
    extra_checks = []
    if dp:
        report(50, gettext_noop("checking the contributions on half of the rows"))
        spec = dp_aggregates.AggregateSpec.from_dict(job.params["aggregate"])
        try:
            contributions = dp_aggregates.check_contributions(dp_aggregates.read_contributions(held), spec,
                                                              private["unit_id"])
        except ValueError as exc:  # fixed words (dp_aggregates never quotes the file)
            raise failed(f"the contributions cannot be aggregated: {exc}", outcome=public_outcome,
                         log=outcome.log) from None
        half = _half_run(job, root, published, full, limits, spec, caps, failed, why)
        local, counted = dp_aggregates.row_local(contributions, half, spec)
        if not local:
            raise failed(f"not released: {dp_aggregates.ROW_LOCAL_FAILED}", detail=counted, outcome=public_outcome,
                         log=outcome.log)
        extra_checks.append(checks.check("row_local", True, dp_aggregates.ROW_LOCAL_OK, finding=counted))
        report(80, gettext_noop("releasing DP aggregates"))
        aggregates, privacy = dp_aggregates.release(contributions, spec, epsilon=float(job.epsilon), delta=job.delta)
        pacsv.write_csv(aggregates, output / "aggregates.csv")
        result["metrics"]["groups_released"] = privacy["groups_released"]
    else:
        output.rmdir()
        try:  # again from syft-job's review folder: regular files only, capped
            outputs.collect(held, output, caps)
        except outputs.OutputRefused as exc:
            raise failed(exc.public, detail=str(exc), outcome=public_outcome, log=outcome.log) from None
        privacy = {"mechanism": "none: files reviewed by a steward, not differentially private",
                   "epsilon": float(job.epsilon), "delta": job.delta,
                   "note": "charged the job's ε by the dataset's sandbox policy"}
    result["privacy"] = privacy
    result["checks"] = extra_checks + checks.code_output_checks(
        output, private, max_bytes=job.params["max_output_bytes"], min_cell_count=job.params["min_cell_count"])
    result["outcome"]["output_sha256"] = result["output_sha256"] = _digest(output)
    result["output_path"] = str(output.relative_to(settings.STATE_DIR))
    data.seal(output)
    return result


def _half_run(job: Job, root: Path, published, full: pa.Table, limits: Limits, spec, caps, failed, why) -> pa.Table:
    """The same script on a random half of the private rows, for the row-locality check."""
    from .outcomes import outcome_dict

    keep = np.random.default_rng([HALF_SEED, job.pk]).random(full.num_rows) < 0.5
    mock = pq.read_table(next((published.box / published.owner / "public").rglob(code_to_data.DATA_FILE)))
    half = code_to_data.publish_dataset(root / "half", owner=published.owner, name=published.name, mock=mock,
                                        private=full.filter(keep), summary="row-locality check", readme="")
    script = code_to_data.job(data.jobs_box(), owner=published.owner,
                              job_name=actions.syft_job_name(job)).code_dir / code_to_data.ENTRYPOINT
    outcome = code_to_data.run_script(script, half, work=root / "work-half", limits=limits)
    if not outcome.ok:
        reason = why(outcome)
        raise failed(f"the code failed on half of the rows: {reason}", detail=outcome.message,
                     outcome=outcome_dict(outcome, reason), log=outcome.log)
    try:
        outputs.collect(root / "work-half" / "outputs", root / "output-half", caps)
        return dp_aggregates.check_contributions(
            dp_aggregates.read_contributions(root / "output-half"), spec, full["unit_id"].filter(keep))
    except outputs.OutputRefused as exc:
        raise failed(f"on half of the rows: {exc.public}", detail=str(exc), log=outcome.log) from None
    except ValueError as exc:
        raise failed(f"the contributions on half of the rows cannot be checked: {exc}", log=outcome.log) from None


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
