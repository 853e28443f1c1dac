"""A job's resources are the data owner's to bound: each dataset's sandbox policy sets the
most a job may ask for, a request above it is refused naming the field with nothing created,
what a job leaves out takes the platform's default capped at the maximum, and the steward
sees the limits on the job's page before approving it. Only the owning bureau's stewards
change the maxima (the role table of tests/jobs/test_code_to_data_roles.py sends them)."""
from __future__ import annotations

import pytest

from conftest import api_client
from sandbox_support import add_rooms_corpus, approve_lab, submit

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

CENTRALIZED = {"kind": "centralized", "title": "rooms", "task": "room-use",
               "params": {"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5}}


@pytest.fixture
def rooms_world(world):
    add_rooms_corpus(world, rooms=1500)
    approve_lab(world, epsilon="10")
    return world


def _counts():
    from jobs.models import Job
    from provenance.models import LineageEvent

    return Job.objects.count(), LineageEvent.objects.count()


def test_limits_above_the_datasets_maxima_are_refused_naming_the_field(rooms_world):
    w = rooms_world
    before = _counts()
    # What the outside test asked for and got; the policy's defaults allow 8192 MB and 3600 s.
    cases = [
        ({"memory_mb": 262_144}, "limits.memory_mb", "at most 8192 MB for this dataset, got 262144"),
        ({"cpu_seconds": 86_400}, "limits.cpu_seconds", "at most 3600 s for this dataset, got 86400"),
        ({"wall_seconds": 86_400}, "limits.wall_seconds", "at most 3600 s for this dataset, got 86400"),
        ({"processes": 4096}, "limits.processes", "at most 128 for this dataset, got 4096"),
        ({"output_mb": 65_536}, "limits.output_mb", "at most 1024 MB for this dataset, got 65536"),
        ({"disk_mb": 4096}, "limits.disk_mb", "at most 2048 MB for this dataset, got 4096"),
        ({"memory_mb": "lots"}, "limits.memory_mb", "a whole number"),
        ({"gpus": 8}, "limits", "unknown limits: gpus"),
    ]
    for limits, field, message in cases:
        response = submit(w, **CENTRALIZED, limits=limits)
        assert response.status_code == 400 and message in response.json()[field][0], (limits, response.content)
    assert _counts() == before


def test_the_owner_lowers_the_maxima_and_jobs_take_the_capped_defaults(rooms_world):
    w = rooms_world
    steward = api_client(w.steward)
    policy = steward.put("/api/sandbox-policies/district-rooms/",
                         {"max_memory_mb": 2048, "max_disk_mb": 256, "max_wall_seconds": 600}, format="json")
    assert policy.status_code == 200, policy.content
    assert policy.json()["max_memory_mb"] == 2048 and policy.json()["max_disk_mb"] == 256
    refused = submit(w, **CENTRALIZED, limits={"memory_mb": 4096})
    assert refused.status_code == 400
    assert refused.json()["limits.memory_mb"] == ["at most 2048 MB for this dataset, got 4096"]
    created = submit(w, **CENTRALIZED, limits={"cpu_seconds": 120})
    assert created.status_code == 201, created.content
    limits = created.json()["limits"]
    # Asked: cpu 120 s. Left out: the platform's defaults (4096 MB, 512 MB of disk, 1200 s) capped at the maxima.
    assert limits["cpu_seconds"] == 120 and limits["memory_mb"] == 2048 and limits["disk_mb"] == 256
    assert limits["wall_seconds"] == 600 and limits["files"] == 10_000
    bad = steward.put("/api/sandbox-policies/district-rooms/", {"max_memory_mb": 10}, format="json")
    assert bad.status_code == 400 and "max_memory_mb" in bad.json()


def test_the_steward_sees_the_limits_before_approving(rooms_world):
    from django.test import Client

    w = rooms_world
    created = submit(w, **CENTRALIZED, limits={"memory_mb": 3000, "wall_seconds": 900})
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    detail = api_client(w.steward).get(f"/api/jobs/{job_id}/").json()
    assert detail["status"] == "submitted" and detail["limits"]["memory_mb"] == 3000
    browser = Client()
    browser.force_login(w.steward)
    page = browser.get(f"/jobs/{job_id}/").content.decode()
    assert 'data-testid="job-decide"' in page  # the approval form is on the same page
    assert 'data-testid="job-limit-memory_mb">3000<' in page and 'data-testid="job-limit-wall_seconds">900<' in page
    assert 'data-testid="job-limit-disk_mb">512<' in page
    policy_page = browser.get("/jobs/code-to-data/").content.decode()
    assert 'data-testid="c2d-max_memory_mb">8192<' in policy_page and 'name="max_disk_mb"' in policy_page
