"""Long work runs on a real Celery worker, shows its progress, and is idempotent."""
from __future__ import annotations

import re

import pytest
from django.db import connection

from conftest import api_client, follow_task

pytestmark = pytest.mark.foundation


@pytest.mark.django_db(transaction=True)
def test_auditor_verifies_the_log_on_a_real_worker(celery_worker, live_world):
    from provenance.models import LineageEvent

    client = api_client(live_world.auditor)
    head = LineageEvent.objects.order_by("-seq").first()
    started = client.post("/api/events/verify/")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    task = follow_task(client, started.json()["id"])
    assert task["status"] == "succeeded", task
    assert task["percent"] == 100 and task["attempts"] == 1
    assert task["result"]["ok"] is True
    assert (task["result"]["checked"], task["result"]["head_hash"]) == (head.seq, head.hash)
    checkpoint = LineageEvent.objects.get(event_type="ledger.events_verified")
    assert checkpoint.actor == live_world.auditor.actor_label
    assert f'"head_seq":{head.seq}' in checkpoint.payload


@pytest.mark.django_db(transaction=True)
def test_worker_names_a_tampered_event_to_the_auditor(celery_worker, live_world):
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE provenance_lineageevent SET actor = 'user:0:mallory' WHERE seq = 4")
        cursor.execute("SET session_replication_role = DEFAULT")
    client = api_client(live_world.auditor)
    task = follow_task(client, client.post("/api/events/verify/").json()["id"])
    assert task["status"] == "succeeded"
    assert task["result"]["ok"] is False
    assert task["result"]["tamper"]["kind"] == "edited" and task["result"]["tamper"]["seq"] == 4


@pytest.mark.django_db
def test_a_retried_task_repeats_no_side_effect(world):
    from provenance.actions import start_event_log_verification
    from provenance.models import LineageEvent
    from provenance.tasks import verify_event_log_task

    task = start_event_log_verification(actor=world.auditor)  # on_commit never fires here
    verify_event_log_task(str(task.pk))
    verify_event_log_task(str(task.pk))  # a broker redelivery
    task.refresh_from_db()
    assert task.status == "succeeded" and task.attempts == 1
    assert LineageEvent.objects.filter(event_type="ledger.events_verified").count() == 1


@pytest.mark.django_db
def test_progress_is_visible_while_work_runs(world):
    from progress.actions import queue_task, run_tracked
    from progress.models import TaskProgress

    task = queue_task("test.steps", label="steps", actor=world.steward, dispatch=lambda _id: None)
    seen = []

    def work(report):
        for percent in (25, 50, 75):
            report(percent, f"step {percent}")
            seen.append(api_client(world.steward).get(f"/api/tasks/{task.pk}/").json())
        return {"steps": 3}

    run_tracked(str(task.pk), work, min_interval_s=0)
    assert [(s["status"], s["percent"], s["stage"]) for s in seen] == [
        ("running", 25, "step 25"), ("running", 50, "step 50"), ("running", 75, "step 75"),
    ]
    task = TaskProgress.objects.get(pk=task.pk)
    assert (task.status, task.percent, task.result) == ("succeeded", 100, {"steps": 3})


@pytest.mark.django_db
def test_a_failing_task_shows_its_error_and_commits_nothing(world):
    from progress.actions import queue_task, run_tracked
    from provenance.models import LineageEvent

    task = queue_task("test.fails", label="fails", actor=world.steward, dispatch=lambda _id: None)
    before = LineageEvent.objects.count()

    def work(report):
        report(40, "reading input")
        raise ValueError("row 17: geometry is not closed")

    with pytest.raises(ValueError):
        run_tracked(str(task.pk), work, commit=lambda result: pytest.fail("commit after failure"))
    data = api_client(world.steward).get(f"/api/tasks/{task.pk}/").json()
    assert data["status"] == "failed"
    assert data["error"] == "ValueError: row 17: geometry is not closed"
    assert LineageEvent.objects.count() == before


@pytest.mark.django_db
def test_one_crash_path_fails_the_task_and_settles_the_apps_side_once(world):
    """A commit that fails fails the task as a failing work does (the task never stays
    "running" for the recovery to find); `reason` words the error, `on_failure` is the app's
    own settlement (a release failed, a submission failed), and the caller still sees the
    exception."""
    from progress.actions import queue_task, run_tracked
    from progress.models import TaskProgress

    settled = []
    task = queue_task("test.commit_fails", label="commit fails", actor=world.steward, dispatch=lambda _id: None)

    def commit(result):
        raise RuntimeError(f"wrote /srv/state/uploads/{result['file']}")

    with pytest.raises(RuntimeError):
        run_tracked(str(task.pk), lambda report: {"file": "rooms.gpkg"}, commit=commit,
                    reason=lambda exc: f"the commit failed ({type(exc).__name__})", on_failure=settled.append)
    task = TaskProgress.objects.get(pk=task.pk)
    assert (task.status, task.error) == ("failed", "the commit failed (RuntimeError)")
    assert settled == ["the commit failed (RuntimeError)"]
    # A retry of the finished task changes nothing and settles nothing again.
    assert run_tracked(str(task.pk), lambda report: pytest.fail("ran again"), on_failure=settled.append).status \
        == "failed"
    assert settled == ["the commit failed (RuntimeError)"]


@pytest.mark.django_db
def test_task_page_shows_a_progress_bar(world, client):
    from progress.actions import queue_task

    task = queue_task("test.page", label="核验溯源事件链", actor=world.auditor, dispatch=lambda _id: None)
    client.force_login(world.auditor)
    html = client.get(f"/tasks/{task.pk}/").content.decode()
    assert re.search(r'<progress id="task-bar" max="100" value="0"[^>]*>', html) and "核验溯源事件链" in html
    client.force_login(world.applicant)
    assert client.get(f"/tasks/{task.pk}/").status_code == 404
