"""Running an approved code-to-data job: PySyft's runner executes the applicant's script in
the jail on the published dataset's private part (sandbox.code_to_data), then the output is
made releasable under the policy the job was submitted with:

- `dp`: the script wrote per-record contributions; they are checked, the script is run again
  on a random half of the rows to check that each record's contribution is its own, and the
  platform releases OpenDP aggregates of them (sandbox.dp_aggregates), charged at OpenDP's ε;
- `reviewed`: the script's files are held as they are for the steward, charged the job's ε
  by policy (they carry no DP guarantee).

Either way the held output gets the automatic checks (size, private identifiers or rows in it,
small counts) before a steward sees it.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings

from sandbox import checks, code_to_data, dp_aggregates
from sandbox.isolation import IsolationUnavailable, Limits

from . import actions, data
from .models import Job

HALF_SEED = 0x5EED


def run(job: Job, root: Path, report) -> dict:
    from .runner import JobFailed, outcome_dict

    published = data.published(job.syft_dataset)
    limits = Limits(**job.limits)
    dp = job.params["outputs"] == "dp"
    report(5, "running the job's code on the private rows")
    try:
        outcome, held = code_to_data.run(data.jobs_box(), owner=published.owner, job_name=actions.syft_job_name(job),
                                         dataset=published, work=root / "work", limits=limits)
    except IsolationUnavailable as exc:
        raise JobFailed(f"not run: {exc}", touched=False) from None
    if not outcome.ok:
        raise JobFailed(outcome.message, outcome=outcome_dict(outcome), log=outcome.log)
    output = root / "output"
    output.mkdir()
    full = code_to_data.private_table(published.box, owner=published.owner, name=published.name)
    private = full.select([c for c in (*checks.IDENTIFIER_COLUMNS, *checks.VERBATIM_COLUMNS) if c in full.column_names])
    result = {"history": [], "metrics": {"private_rows": published.private_rows},
              "outcome": outcome_dict(outcome), "log": outcome.log}
    extra_checks = []
    if dp:
        report(50, "checking the contributions on half of the rows")
        spec = dp_aggregates.AggregateSpec.from_dict(job.params["aggregate"])
        try:
            contributions = dp_aggregates.check_contributions(dp_aggregates.read_contributions(held), spec,
                                                              private["unit_id"])
        except ValueError as exc:
            raise JobFailed(f"the contributions cannot be aggregated: {exc}", outcome=result["outcome"],
                            log=outcome.log) from None
        half = _half_run(job, root, published, full, limits, spec)
        local, detail = dp_aggregates.row_local(contributions, half, spec)
        if not local:
            raise JobFailed(f"not released: {detail}", outcome=result["outcome"], log=outcome.log)
        extra_checks.append(checks.check("row_local", True, detail))
        report(80, "releasing DP aggregates")
        aggregates, privacy = dp_aggregates.release(contributions, spec, epsilon=float(job.epsilon), delta=job.delta)
        pacsv.write_csv(aggregates, output / "aggregates.csv")
        result["metrics"]["groups_released"] = privacy["groups_released"]
    else:
        for item in held.iterdir():
            shutil.copytree(item, output / item.name) if item.is_dir() else shutil.copyfile(item, output / item.name)
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


def _half_run(job: Job, root: Path, published, full: pa.Table, limits: Limits, spec) -> pa.Table:
    """The same script on a random half of the private rows, for the row-locality check."""
    from .runner import JobFailed, outcome_dict

    keep = np.random.default_rng([HALF_SEED, job.pk]).random(full.num_rows) < 0.5
    mock = pq.read_table(next((published.box / published.owner / "public").rglob(code_to_data.DATA_FILE)))
    half = code_to_data.publish_dataset(root / "half", owner=published.owner, name=published.name, mock=mock,
                                        private=full.filter(keep), summary="row-locality check", readme="")
    script = code_to_data.job(data.jobs_box(), owner=published.owner,
                              job_name=actions.syft_job_name(job)).code_dir / code_to_data.ENTRYPOINT
    outcome = code_to_data.run_script(script, half, work=root / "work-half", limits=limits)
    if not outcome.ok:
        raise JobFailed(f"the code failed on half of the rows: {outcome.message}", outcome=outcome_dict(outcome),
                        log=outcome.log)
    try:
        return dp_aggregates.check_contributions(
            dp_aggregates.read_contributions(root / "work-half" / "outputs"), spec, full["unit_id"].filter(keep))
    except ValueError as exc:
        raise JobFailed(f"the contributions on half of the rows cannot be checked: {exc}") from None


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
