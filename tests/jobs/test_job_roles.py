"""Every job and model endpoint and page against every role. The job belongs to the lab
(researcher, tongji-lab) on the compute-only rooms of the steward's bureau; the applicant
is of another organisation. A refused request writes nothing."""
from __future__ import annotations

import pytest

from conftest import per_test, rolled_back_at_the_end
from role_support import ROLES, assert_answers, row
from sandbox_support import add_rooms_corpus, approve_lab, job_in_review

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

DECIDE = row(anonymous=401, researcher=403, applicant=404, steward=200, other_steward=404, data_holder=404,
             auditor=403, admin=403)
READ_ONE = row(anonymous=401, researcher=200, applicant=404, steward=200, other_steward=404, data_holder=404,
               auditor=200, admin=200)
READ_ALL = row(anonymous=401, researcher=200, applicant=200, steward=200, other_steward=200, data_holder=200,
               auditor=200, admin=200)
PAGE_ONE = row(anonymous=302, researcher=200, applicant=404, steward=200, other_steward=404, data_holder=404,
               auditor=200, admin=200)
PAGE_DECIDE = row(anonymous=302, researcher=403, applicant=404, steward=302, other_steward=404, data_holder=404,
                  auditor=403, admin=403)
SUBMIT = {"kind": "centralized", "title": "rooms", "task": "room-use", "dataset": "district-rooms",
          "params": {"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5}}

# (name, method, path, body, expected status per role, status meaning "it was done")
TABLE = [
    ("jobs-list", "get", lambda w: "/api/jobs/", None, READ_ALL, None),
    ("jobs-detail", "get", lambda w: f"/api/jobs/{w.submitted.pk}/", None, READ_ONE, None),
    ("jobs-create", "post", lambda w: "/api/jobs/", lambda w: SUBMIT,
     row(anonymous=401, researcher=201, applicant=403, steward=403, other_steward=403, data_holder=403,
         auditor=403, admin=403), 201),
    ("jobs-approve", "post", lambda w: f"/api/jobs/{w.submitted.pk}/approve/", lambda w: {"note": "ok"}, DECIDE, 200),
    ("jobs-reject", "post", lambda w: f"/api/jobs/{w.submitted.pk}/reject/", lambda w: {"reason": "no"}, DECIDE, 200),
    ("jobs-release", "post", lambda w: f"/api/jobs/{w.reviewed.pk}/release/", lambda w: {"note": "ok"}, DECIDE, 200),
    ("models-list", "get", lambda w: "/api/models/", None, READ_ALL, None),
    ("models-detail", "get", lambda w: f"/api/models/{w.model.pk}/", None, READ_ONE, None),
    ("models-weights", "get", lambda w: f"/api/models/{w.model.pk}/weights/", None,
     row(anonymous=401, researcher=200, applicant=404, steward=403, other_steward=404, data_holder=404,
         auditor=403, admin=403), 200),
    ("page-list", "get", lambda w: "/jobs/", None,
     row(anonymous=302, researcher=200, applicant=200, steward=200, other_steward=200, data_holder=200,
         auditor=200, admin=200), None),
    ("page-job", "get", lambda w: f"/jobs/{w.submitted.pk}/", None, PAGE_ONE, None),
    ("page-approve", "post", lambda w: f"/jobs/{w.submitted.pk}/approve/", lambda w: {"text": "ok"}, PAGE_DECIDE, 302),
    ("page-release", "post", lambda w: f"/jobs/{w.reviewed.pk}/release/", lambda w: {"text": "ok", "confirmed": "yes"},
     PAGE_DECIDE,
     302),
    ("page-model", "get", lambda w: f"/models/{w.model.pk}/", None, PAGE_ONE, None),
]


def job_world(w, *, released: bool = True):
    from django.test import TestCase

    from jobs import actions

    add_rooms_corpus(w, rooms=1500)
    approve_lab(w, epsilon="10")
    w.submitted = actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="pending",
                                     task="room-use", params={"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5})
    w.reviewed = job_in_review(w, title="held")
    if released:
        done = job_in_review(w, title="released")
        with TestCase.captureOnCommitCallbacks(execute=True):  # as its commit does: the weights are published
            actions.release_job(actor=w.steward, job=done)
        w.model = done.model
    return w


CASES = [(name, role) for name, *_ in TABLE for role in ROLES]


@pytest.fixture(scope="module")
def shared_job_world(module_world, django_db_blocker):
    """The jobs are built once for the module (two real DP trainings); each case asks on a
    copy of it and its changes are rolled back."""
    with rolled_back_at_the_end(django_db_blocker):
        yield job_world(per_test(module_world))


@pytest.mark.parametrize("name,role", CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_job_endpoint_answers_each_role(shared_job_world, name, role):
    _, method, path, body, expected, done = next(t for t in TABLE if t[0] == name)
    w = per_test(shared_job_world)
    assert_answers(w, role, method, path(w), body(w) if body else None, expected, done)


def test_a_steward_never_decides_their_own_organisations_job(module_world):
    from jobs import rules as jobs_rules
    from jobs.models import Job
    from kernel.errors import Refused

    world = per_test(module_world)
    job = Job(dataset=world.rooms, organisation=world.bureau)
    with pytest.raises(Refused, match="separation of duties"):
        jobs_rules.check_decide_job(world.steward, job)
