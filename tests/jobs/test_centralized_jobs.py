"""A centralized DP training job, driven through the API the way an applicant and a steward
drive it, on the real worker: submit, approve, run isolated with Opacus, review, release,
download the model, and check that it beats the trivial model on held-out rooms."""
from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import api_client
from sandbox_support import add_rooms_corpus, approve_lab, downloaded_model_scores, follow_job, submit

pytestmark = pytest.mark.sandbox

PARAMS = {"epochs": 3, "batch_size": 256, "learning_rate": 0.5, "target_epsilon": 2.0, "delta": 1e-5,
          "max_grad_norm": 1.0, "accountant": "rdp"}


def test_centralized_job_from_submission_to_downloaded_model(live_world, celery_worker):
    from budgets.models import PrivacyBudget
    from jobs.models import Job
    from provenance.models import LineageEvent

    w = live_world
    add_rooms_corpus(w, rooms=6000)
    approve_lab(w, epsilon="5")
    created = submit(w, kind="centralized", title="room use", task="room-use", params=PARAMS)
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert created.json()["status"] == "submitted"

    steward = api_client(w.steward)
    approved = steward.post(f"/api/jobs/{job_id}/approve/", {"note": "built-in task"}, format="json")
    assert approved.status_code == 200, approved.content
    job = follow_job(w, job_id)
    assert job["status"] == "review", job
    assert len(job["history"]) == 3 and job["progress"]["percent"] == 100
    privacy = job["privacy"]
    assert privacy["accountant"] == "rdp" and 0 < privacy["epsilon"] <= 2.0
    assert privacy["noise_multiplier"] > 0.5
    assert job["log"] is None  # the applicant never sees the log
    assert all(c["passed"] for c in job["checks"]), job["checks"]

    budget = PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms)
    assert budget.epsilon_spent == Job.objects.get(pk=job_id).epsilon_spent  # the refund left what was used
    assert budget.epsilon_spent >= Decimal(str(privacy["epsilon"])).quantize(Decimal("0.000001"), "ROUND_FLOOR")

    released = steward.post(f"/api/jobs/{job_id}/release/", {"note": "ok"}, format="json")
    assert released.status_code == 200, released.content
    model_id = released.json()["model"]
    card = api_client(w.researcher).get(f"/api/models/{model_id}/").json()["card"]
    assert card["privacy"]["epsilon"] == float(budget.epsilon_spent)
    assert card["lineage"]["job"] == f"jobs.job:{job_id}"

    accuracy, majority = downloaded_model_scores(w, model_id)
    assert accuracy > majority + 0.05, (accuracy, majority)

    kinds = list(LineageEvent.objects.filter(subject=f"jobs.job:{job_id}").values_list("event_type", flat=True))
    assert kinds == ["jobs.submitted", "jobs.approved", "jobs.started", "jobs.finished", "jobs.released"]
