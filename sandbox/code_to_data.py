"""Code-to-data on PySyft's dataset and job layers (`syft-dataset`, `syft-job`) over local
folders. PySyft's sync transport (Google Drive) is not used: the platform holds both sides.

- **Datasets.** A compute-only dataset version is published as a PySyft dataset in a datasite
  folder of its own (`publish_dataset`): the mock part (synthetic rows, public) and the
  private part (the version's rows without direct identifiers), owned by the bureau's
  datasite. A job's jail sees that folder and nothing else of the platform's.
- **The applicant's side.** The applicant gets the public part as a zip laid out as a datasite
  (`mock_archive`), and runs their script against it exactly as it will run on the private
  part: `sy.resolve_dataset_file_path(name)` gives the mock file outside a job and the private
  file inside one (`SYFT_IS_IN_JOB`).
- **Jobs.** The submitted script becomes a PySyft python job in the bureau's jobs datasite
  (`submit`); the steward's decision is the job's approval or rejection (`approve`, `reject`);
  `run` executes an approved job and leaves its outputs in the job's review folder, held
  until `share`.

PySyft's stock runner executes the job's `run.sh`, which builds a virtual environment with
uv and installs syft from the network: unusable offline, and it would run the job outside
the jail. `IsolatedJobRunner` keeps syft-job's lifecycle (state.yaml, stdout/stderr,
returncode, review/outputs) and only replaces the execution with `sandbox.isolation`, and
takes the job's outputs across with `sandbox.outputs.collect` (regular files only, capped),
never by following what the job left in its folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .isolation import Limits, Outcome, run_isolated
from .outputs import Caps, OutputRefused, collect

ENTRYPOINT = "job.py"
DATA_FILE = "units.parquet"
SYFT_INSTALL_SOURCE = "syft==0.10.0"


@dataclass
class PublishedDataset:
    box: Path  # the datasite folder a job's jail reads
    owner: str  # the bureau's datasite email
    name: str
    mock_sha256: str
    private_sha256: str
    mock_rows: int
    private_rows: int


def _quiet():
    """PySyft's clients print progress for notebooks; the worker's log does not need it."""
    return contextlib.redirect_stdout(io.StringIO())


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def publish_dataset(box: Path, *, owner: str, name: str, mock: pa.Table, private: pa.Table, summary: str,
                    readme: str) -> PublishedDataset:
    """A datasite folder holding one PySyft dataset: `mock` public, `private` owner-only."""
    from syft_datasets.dataset_manager import SyftDatasetManager

    if mock.schema.names != private.schema.names:
        raise ValueError("mock: the mock rows must have the private rows' columns, in order")
    box.mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch)
        (staged / "mock").mkdir()
        (staged / "private").mkdir()
        pq.write_table(mock, staged / "mock" / DATA_FILE)
        pq.write_table(private, staged / "private" / DATA_FILE)
        (staged / "README.md").write_text(readme)
        with _quiet():
            dataset = SyftDatasetManager(syftbox_folder_path=box, email=owner).create(
                name=name, mock_path=staged / "mock", private_path=staged / "private", summary=summary,
                readme_path=staged / "README.md", users="any")
    return PublishedDataset(box=box, owner=owner, name=name, mock_sha256=_sha256(dataset.mock_dir / DATA_FILE),
                            private_sha256=_sha256(dataset.private_dir / DATA_FILE), mock_rows=mock.num_rows,
                            private_rows=private.num_rows)


def private_table(box: Path, *, owner: str, name: str, columns: list[str] | None = None) -> pa.Table:
    """The private rows of a published dataset, for the platform's own checks."""
    from syft_datasets.dataset_manager import SyftDatasetManager

    dataset = SyftDatasetManager(syftbox_folder_path=box, email=owner).get(name=name, datasite=owner)
    return pq.read_table(dataset.private_dir / DATA_FILE, columns=columns)


def mock_archive(box: Path, *, owner: str, name: str, guide: str) -> bytes:
    """The public part as a zip laid out as a datasite, with `guide` as MILIAO.md: unzip it,
    set SYFTBOX_FOLDER to the folder and SYFTBOX_EMAIL to `owner`, and
    `sy.resolve_dataset_file_path(name)` gives the mock file."""
    public = box / owner / "public"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(public.rglob("*")):
            if path.is_file():
                archive.write(path, str(path.relative_to(box)))
        archive.writestr("MILIAO.md", guide)
    return buffer.getvalue()


# --- jobs --------------------------------------------------------------------------------


def _client(jobs_box: Path, user: str, *, owner: bool):
    from syft_job import JobClient, SyftJobConfig

    with _quiet():
        return JobClient(SyftJobConfig(syftbox_folder=jobs_box, current_user_email=user, has_do_role=owner))


def submit(jobs_box: Path, *, owner: str, submitter: str, job_name: str, code: str) -> Path:
    """The applicant's script as a PySyft python job in the owner's inbox; returns its folder."""
    with _quiet():
        _client(jobs_box, owner, owner=True).setup_ds_job_folder_as_do(submitter)
        client = _client(jobs_box, submitter, owner=False)
        client.peer_install_sources[owner] = SYFT_INSTALL_SOURCE
        with tempfile.TemporaryDirectory() as scratch:
            script = Path(scratch) / ENTRYPOINT
            script.write_text(code)
            return client.submit_python_job(owner, str(script), job_name=job_name)


def job(jobs_box: Path, *, owner: str, job_name: str):
    """The owner's view of a job (syft_job.JobInfo): its code, status, outputs."""
    with _quiet():
        return _client(jobs_box, owner, owner=True).jobs[job_name]


def job_names(jobs_box: Path, *, owner: str) -> list[str]:
    """The jobs in the owner's inbox, by name."""
    with _quiet():
        return [info.name for info in _client(jobs_box, owner, owner=True).jobs]


def approve(jobs_box: Path, *, owner: str, job_name: str, reason: str = "") -> None:
    with _quiet():
        job(jobs_box, owner=owner, job_name=job_name).approve(reason=reason or None)


def reject(jobs_box: Path, *, owner: str, job_name: str, reason: str) -> None:
    with _quiet():
        job(jobs_box, owner=owner, job_name=job_name).reject(reason=reason)


def share(jobs_box: Path, *, owner: str, job_name: str, submitter: str) -> None:
    """The reviewed outputs become readable by the submitter."""
    with _quiet():
        job(jobs_box, owner=owner, job_name=job_name).share_outputs([submitter])


def outputs_readable_by(jobs_box: Path, *, owner: str, job_name: str, user: str) -> bool:
    """Whether PySyft's permissions let `user` read the job's outputs (after `share`)."""
    with _quiet():
        info = job(jobs_box, owner=owner, job_name=job_name)
        return info._get_perm_context().open(info._relative_review_path("outputs")).has_read_access(user)


def run_script(script: Path, dataset: PublishedDataset, *, work: Path, limits: Limits, watch=None) -> Outcome:
    """Run a job script in the jail against a published dataset's private part: the script's
    `sy.resolve_dataset_file_path` resolves there, and it writes `outputs/` in `work`."""
    (work / "outputs").mkdir(parents=True, exist_ok=True)
    return run_isolated(script, data=dataset.box, work=work, limits=limits, watch=watch,
                        env={"SYFTBOX_FOLDER": str(dataset.box), "SYFTBOX_EMAIL": dataset.owner,
                             "SYFT_IS_IN_JOB": "true"})


def _runner_class():
    from syft_job import SyftJobRunner

    class IsolatedJobRunner(SyftJobRunner):
        """syft-job's runner, executing the job's script in the jail instead of its run.sh."""

        def __init__(self, config, *, dataset: PublishedDataset, work: Path, limits: Limits, caps: Caps,
                     watch=None):
            super().__init__(config)
            self.dataset, self.work, self.limits, self.caps, self.watch = dataset, work, limits, caps, watch
            self.outcome: Outcome | None = None
            self.refused: OutputRefused | None = None

        def _isolated(self, ref, timeout: int) -> int:
            code = self.manager.submission_dir(ref) / "code"
            self.outcome = run_script(code / ENTRYPOINT, self.dataset, work=self.work, limits=self.limits,
                                      watch=self.watch)
            if self.outcome.ok:  # into code/outputs/, where syft-job collects outputs from
                staged = code / "outputs.staged"
                try:
                    collect(self.work / "outputs", staged, self.caps)
                    for item in staged.iterdir():
                        item.rename(code / "outputs" / item.name)
                except OutputRefused as exc:
                    self.refused = exc
                finally:
                    shutil.rmtree(staged, ignore_errors=True)
            review = self.manager.review_dir(ref)
            (review / "stdout.txt").write_text(self.outcome.log)
            (review / "stderr.txt").write_text("" if self.outcome.ok else self.outcome.message)
            return 0 if self.outcome.ok else (self.outcome.exit_code or 1)

        _execute_job_captured = _isolated
        _execute_job_streaming = _isolated

    return IsolatedJobRunner


def run(jobs_box: Path, *, owner: str, job_name: str, dataset: PublishedDataset, work: Path, limits: Limits,
        caps: Caps, watch=None) -> tuple[Outcome, Path, OutputRefused | None]:
    """Run an approved job isolated on the dataset's private part; returns how it ended, its
    held outputs folder (review/outputs, readable by the owner only until `share`) and, when
    its outputs could not be taken across, why (nothing is held then)."""
    from syft_job import SyftJobConfig

    config = SyftJobConfig(syftbox_folder=jobs_box, current_user_email=owner, has_do_role=True)
    with _quiet():
        runner = _runner_class()(config, dataset=dataset, work=work, limits=limits, caps=caps, watch=watch)
        info = job(jobs_box, owner=owner, job_name=job_name)
        if info.status != "approved":
            raise ValueError(f"job {job_name}: is {info.status}, not approved")
        runner._execute_job(runner._find_jobref_from_name(job_name, info.submitted_by), stream_output=False,
                            timeout=limits.wall_seconds)
    if runner.outcome is None:
        raise RuntimeError(f"job {job_name}: syft-job did not run it (no run.sh in its submission?)")
    return runner.outcome, job(jobs_box, owner=owner, job_name=job_name).job_review_path / "outputs", runner.refused
