"""A crash leaves nothing stuck: a real worker process is SIGKILLed mid-release and mid-job,
started again, and what it was running is found and failed (the release can be rebuilt,
the job keeps its charge). Meanwhile the platform's own work runs on its own worker, so an
auditor's verification finishes while a job is still running."""
from __future__ import annotations

import datetime
import os
import signal
import socket
import textwrap
import time

import pytest

from conftest import api_client, follow_task, start_worker, stop_worker, wait_for, worker_env
from sandbox_support import add_rooms_corpus, approve_lab, follow_job, submit

pytestmark = pytest.mark.foundation

# Writes a sign of life into its folder five times a second, forever: only a kill stops it.
# A sign of life the host sees while the job runs: its work folder is a tmpfs inside the jail,
# copied back only at the end, but its log is written to the host as it goes.
ALIVE = textwrap.dedent("""
    import time
    while True:
        print(repr(time.time()), flush=True)
        time.sleep(0.2)
""")
AGGREGATE = {"by": ["neighbourhood"], "values": {"monthly_rent": [0, 60000]}}


@pytest.fixture(scope="module")
def crash_worker(celery_worker, tmp_path_factory):
    """A worker of our own for the `jobs` and `platform` queues, which the tests kill and start
    again under the same name; the session's workers stop consuming those queues meanwhile
    (Celery's remote control), so every job and build of this module lands on ours."""
    from django.conf import settings

    from miliao.celery import app

    queues = [settings.JOBS_QUEUE, settings.PLATFORM_QUEUE]
    name = f"crash-{os.getpid()}@{socket.gethostname()}"
    log_path = tmp_path_factory.mktemp("crash") / "worker.log"
    for queue in queues:
        app.control.cancel_consumer(queue, destination=celery_worker.names, reply=True)
    worker = {"proc": start_worker(queues, name, log_path, worker_env())}

    def kill() -> None:
        worker["proc"].send_signal(signal.SIGKILL)
        worker["proc"].wait()

    def restart() -> None:
        worker["proc"] = start_worker(queues, name, log_path, worker_env())

    try:
        yield type("CrashWorker", (), {"name": name, "kill": staticmethod(kill), "restart": staticmethod(restart),
                                       "log": log_path})
    finally:
        if worker["proc"].poll() is None:
            stop_worker(worker["proc"])
        for queue in queues:
            app.control.add_consumer(queue, destination=celery_worker.names, reply=True)


def _task(task_id):
    from progress.models import TaskProgress

    return TaskProgress.objects.get(pk=task_id)


@pytest.mark.django_db(transaction=True)
def test_a_release_killed_mid_build_fails_with_its_partial_folder_removed_and_builds_again(crash_worker,
                                                                                           live_world):
    from django.conf import settings

    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district
    from provenance.models import LineageEvent
    from releases.models import Release

    w = live_world
    scratch = settings.STATE_DIR / "scratch" / "crash-roads.parquet"
    summary = store.write_corpus(generate_district(seed=8, rooms=4000), scratch)
    corpus = record_corpus_version(actor=w.steward, dataset=w.roads, file=scratch, source="generator",
                                   source_crs="EPSG:4490", summary=summary)
    steward = api_client(w.steward)
    policy = steward.post("/api/release-policies/", {"dataset": "huangpu-roads", "spec": {
        "data_class": "open", "outputs": ["geoparquet", "geopackage", "geojson"]}}, format="json").json()
    started = steward.post("/api/releases/", {"corpus_version": corpus.pk, "policy": policy["id"]}, format="json")
    assert started.status_code == 202, started.content
    release_id, task_id = started.json()["id"], started.json()["task"]
    releases = settings.STATE_DIR / "releases"

    def partials() -> list:
        return list(releases.glob(f"r{release_id}.partial-*"))

    # Mid-way: past the first pass (30 %), writing into its staging folder.
    wait_for(lambda: _task(task_id).percent >= 30 and partials(), timeout=60, interval=0.05,
             what="the build to be mid-way")
    crash_worker.kill()
    assert Release.objects.get(pk=release_id).status == "building"  # what the crash leaves
    assert _task(task_id).status == "running" and _task(task_id).worker == crash_worker.name
    assert partials()

    crash_worker.restart()  # its start finds the task it was running and fails it
    wait_for(lambda: steward.get(f"/api/releases/{release_id}/").json()["status"] == "failed", timeout=10,
             what="the release to fail")
    task = follow_task(steward, task_id, timeout=5)
    assert task["status"] == "failed" and crash_worker.name in task["error"]
    assert not partials() and not (settings.STATE_DIR / "releases" / f"r{release_id}").exists()
    assert steward.post(f"/api/releases/{release_id}/publish/").status_code == 409
    events = list(LineageEvent.objects.filter(subject=f"releases.release:{release_id}")
                  .values_list("event_type", flat=True))
    assert events == ["releases.release_started", "releases.release_failed"]
    assert LineageEvent.objects.filter(event_type="tasks.worker_lost", subject=f"progress.taskprogress:{task_id}")\
        .count() == 1

    # The same corpus version and policy build again, and publish.
    again = steward.post("/api/releases/", {"corpus_version": corpus.pk, "policy": policy["id"]}, format="json")
    assert follow_task(steward, again.json()["task"], timeout=120)["status"] == "succeeded"
    published = steward.post(f"/api/releases/{again.json()['id']}/publish/")
    assert published.status_code == 200 and published.json()["status"] == "published"


@pytest.mark.django_db(transaction=True)
def test_a_job_killed_mid_run_fails_with_its_charge_kept_and_never_stalls_verification(crash_worker,
                                                                                        live_world):
    from budgets.models import PrivacyBudget
    from jobs import actions as job_actions
    from jobs.models import Job
    from provenance.models import LineageEvent

    w = live_world
    add_rooms_corpus(w, rooms=1000)
    approve_lab(w, epsilon="10")
    assert api_client(w.steward).post("/api/syft-datasets/", {"dataset": "district-rooms"},
                                      format="json").status_code == 201
    created = submit(w, kind="code", title="runs until stopped", code=ALIVE,
                     params={"target_epsilon": 2.0, "aggregate": AGGREGATE})
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert api_client(w.steward).post(f"/api/jobs/{job_id}/approve/", {}, format="json").status_code == 200
    job = Job.objects.get(pk=job_id)
    alive = job_actions.job_dir(job) / ".work.jail" / "job.log"
    wait_for(lambda: alive.exists() and alive.stat().st_size > 0 and _task(job.task_id).status == "running",
             timeout=90, interval=0.2, what="the job to be running in its jail")

    # The job holds the jobs worker; an auditor's verification runs on the platform's own.
    auditor = api_client(w.auditor)
    verified = follow_task(auditor, auditor.post("/api/events/verify/").json()["id"], timeout=60)
    assert verified["status"] == "succeeded" and verified["result"]["ok"] is True
    assert Job.objects.get(pk=job_id).status == "running"

    crash_worker.kill()
    assert Job.objects.get(pk=job_id).status == "running"  # what the crash leaves
    # The jail died with its worker: the job's sign of life stops.
    beat = alive.stat().st_size
    time.sleep(1.0)
    assert alive.stat().st_size == beat, "the job kept running after its worker was killed"

    crash_worker.restart()
    failed = follow_job(w, job_id, until=("failed",), timeout=10)
    assert crash_worker.name in failed["status_reason"] and "charge stands" in failed["status_reason"]
    job = Job.objects.get(pk=job_id)
    assert job.epsilon_spent == job.epsilon == 2
    budget = PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms)
    assert budget.epsilon_spent == job.epsilon  # charged in full, nothing refunded
    assert _task(job.task_id).status == "failed"
    events = list(LineageEvent.objects.filter(subject=f"jobs.job:{job_id}").values_list("event_type", flat=True))
    assert events == ["jobs.submitted", "jobs.approved", "jobs.started", "jobs.failed"]


@pytest.mark.django_db(transaction=True)
def test_the_sweep_fails_a_task_whose_heartbeat_stopped_and_leaves_live_ones(live_world):
    """The beat's sweep (no restart involved): only a running task whose heartbeat is older
    than TASK_STALE_S is lost, and a second sweep finds nothing more."""
    from django.conf import settings
    from django.utils import timezone

    from progress.actions import queue_task, recover_lost_tasks
    from progress.models import TaskProgress
    from provenance.models import LineageEvent

    w = live_world
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.TASK_STALE_S + 5)
    tasks = {}
    for name, heartbeat in (("dead", stale), ("alive", now)):
        tasks[name] = queue_task("ledger.verify_events", label=name, actor=w.auditor, dispatch=lambda _id: None)
        TaskProgress.objects.filter(pk=tasks[name].pk).update(status="running", worker="gone@nowhere",
                                                              heartbeat_at=heartbeat)
    assert recover_lost_tasks() == [str(tasks["dead"].pk)]
    assert recover_lost_tasks() == []
    assert TaskProgress.objects.get(pk=tasks["dead"].pk).status == "failed"
    assert "gone@nowhere" in TaskProgress.objects.get(pk=tasks["dead"].pk).error
    assert TaskProgress.objects.get(pk=tasks["alive"].pk).status == "running"
    assert LineageEvent.objects.filter(event_type="tasks.worker_lost").count() == 1
