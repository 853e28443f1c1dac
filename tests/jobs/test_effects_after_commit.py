"""Irreversible effects follow the commit: PySyft's submission, approval and sharing of a
code job, and a released model's weights in the registry, happen only once the action's
transaction has committed. A commit that fails (a deferred constraint on PostgreSQL, as a
lost connection would) leaves nothing shared or published, and the job as it was."""
from __future__ import annotations

import hashlib
import textwrap

import pytest
from django.db import DatabaseError

from conftest import failing_commit
from sandbox_support import add_rooms_corpus, approve_lab, follow_job, job_in_review

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]

# Counts per district: a reviewed output that passes the automatic checks.
SUMMARY = textwrap.dedent("""
    import os
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import syft as sy

    units = pq.read_table(sy.resolve_dataset_file_path("district-rooms"), columns=["kind", "district"])
    rooms = units.filter(pc.equal(units["kind"], "room"))
    os.makedirs("outputs", exist_ok=True)
    pacsv.write_csv(rooms.group_by("district").aggregate([("kind", "count")]), "outputs/rooms_by_district.csv")
""")


def _shared_with(w, job) -> bool:
    """Whether PySyft lets the job's submitter read its outputs."""
    from jobs import actions, data
    from sandbox import code_to_data

    return code_to_data.outputs_readable_by(data.jobs_box(), owner=w.syft.owner, job_name=actions.syft_job_name(job),
                                            user=data.submitter_email(job.submitted_by))


def test_a_failed_commit_publishes_no_model(live_world):
    from jobs import actions
    from jobs.models import Job, TrainedModel

    w = live_world
    add_rooms_corpus(w, rooms=1500)
    approve_lab(w)
    job = job_in_review(w)
    folder = actions.models_dir() / f"job-{job.pk}"
    with failing_commit("jobs.released"), pytest.raises(DatabaseError, match="the commit fails"):
        actions.release_job(actor=w.steward, job=job)
    assert Job.objects.get(pk=job.pk).status == "review"
    assert not TrainedModel.objects.exists()
    assert not folder.exists() or not list(folder.iterdir())  # neither the weights nor a staged copy

    actions.release_job(actor=w.steward, job=job)
    model = TrainedModel.objects.get(job=job)
    assert [p.name for p in folder.iterdir()] == ["model.pt"]
    assert hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest() == model.sha256


def test_a_failed_commit_leaves_nothing_submitted_approved_or_shared_in_pysyft(live_world, celery_worker):
    from jobs import actions, data
    from jobs.models import Job
    from sandbox import code_to_data

    w = live_world
    add_rooms_corpus(w, rooms=1000)
    approve_lab(w)
    actions.set_sandbox_policy(actor=w.steward, dataset=w.rooms, code_outputs="reviewed", min_cell_count=10,
                               max_output_bytes=100_000)
    w.syft = actions.publish_syft_dataset(actor=w.steward, dataset=w.rooms)
    box, owner = data.jobs_box(), w.syft.owner

    def submit():
        return actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="code", title="rooms by district",
                                  code=SUMMARY, params={"target_epsilon": 0.5})

    # The box outlives the test database: earlier tests' jobs may be in it.
    before = set(code_to_data.job_names(box, owner=owner))
    with failing_commit("jobs.submitted"), pytest.raises(DatabaseError, match="the commit fails"):
        submit()
    assert not Job.objects.exists() and set(code_to_data.job_names(box, owner=owner)) == before
    job = submit()
    assert set(code_to_data.job_names(box, owner=owner)) - before == {actions.syft_job_name(job)}

    with failing_commit("jobs.approved"), pytest.raises(DatabaseError, match="the commit fails"):
        actions.approve_job(actor=w.steward, job=job)
    assert Job.objects.get(pk=job.pk).status == "submitted" and Job.objects.get(pk=job.pk).task_id is None
    assert code_to_data.job(box, owner=owner, job_name=actions.syft_job_name(job)).status == "pending"
    job = actions.approve_job(actor=w.steward, job=job)
    assert code_to_data.job(box, owner=owner, job_name=actions.syft_job_name(job)).status == "approved"

    assert follow_job(w, job.pk)["status"] == "review"  # run on the worker
    job.refresh_from_db()
    with failing_commit("jobs.released"), pytest.raises(DatabaseError, match="the commit fails"):
        actions.release_job(actor=w.steward, job=job)
    assert Job.objects.get(pk=job.pk).status == "review" and not _shared_with(w, job)
    actions.release_job(actor=w.steward, job=job)
    assert _shared_with(w, job)
