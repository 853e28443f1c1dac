"""Applications name dataset and version, fields, area, purpose, duration and people; bad
input names its field and writes nothing; stewards approve, reject or ask for changes, and
the applicant resubmits."""

from __future__ import annotations

import json

import pytest

from access_support import counts, publish_release
from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]

GOOD = {
    "dataset": "pudong-pipes",
    "purpose_category": "research",
    "purpose": "pipe ageing study for a journal",
    "fields": ["room_use"],
    "duration_days": 30,
    "people": ["researcher"],
}


@pytest.fixture
def w(world):
    world.pipes_release = publish_release(world, world.pipes)
    return world


def test_a_full_application_is_recorded_with_its_lineage(w):
    body = {**GOOD, "release": w.pipes_release.pk, "area": {"grid_code": "G6123674"}}
    response = api_client(w.researcher).post("/api/applications/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["purpose_category"] == "research" and data["fields"] == ["room_use"]
    assert data["area"]["grid_code"] == "G6123674" and len(data["area"]["bbox"]) == 4
    assert data["people"] == ["researcher"] and data["duration_days"] == 30

    from provenance.models import LineageEvent

    event = LineageEvent.objects.get(
        event_type="access.application_submitted", subject=f"access.application:{data['id']}"
    )
    payload = json.loads(event.payload)
    assert payload["purpose_category"] == "research" and payload["people"] == ["researcher"]
    assert payload["inputs"] == sorted(
        ["catalog.dataset:%d" % w.pipes.pk, f"releases.release:{w.pipes_release.pk}"]
    )


def test_without_a_release_the_latest_published_one_is_meant(w):
    response = api_client(w.researcher).post("/api/applications/", GOOD, format="json")
    assert response.status_code == 201 and response.json()["release"] == w.pipes_release.pk


def _foreign_release(w):
    return publish_release(w, w.roads).pk


CASES = [
    ({"purpose_category": "espionage"}, "purpose_category", "not a valid choice"),
    ({"purpose": "short"}, "purpose", "10 to 4000"),
    ({"release": 999999}, "release", "does not exist"),
    ({"release": _foreign_release}, "release", "is of huangpu-roads, not of pudong-pipes"),
    ({"fields": ["no_such_column"]}, "fields", "has no column 'no_such_column'"),
    ({"fields": "room_use"}, "fields", "list"),
    ({"fields": ["drop table"]}, "fields", "not a column name"),
    ({"area": {"bbox": [121.4, 31.1, 121.5]}}, "area", "four numbers"),
    ({"area": {"bbox": [121.6, 31.1, 121.5, 31.2]}}, "area", "west < east"),
    ({"area": {"bbox": [100.0, 20.0, 100.1, 20.1]}}, "area", "does not overlap"),
    ({"area": {"grid_code": "X123"}}, "area", "not a grid code"),
    ({"area": {"circle": 5}}, "area", "either"),
    ({"area": "everywhere"}, "area", "either"),
    ({"duration_days": 0}, "duration_days", "from 1 to 365"),
    ({"duration_days": 1000}, "duration_days", "from 1 to 365"),
    ({"duration_days": "soon"}, "duration_days", "valid integer"),
    ({"people": ["applicant"]}, "people", "applicant is not in tongji-lab"),
    ({"people": ["ghost"]}, "people", "does not exist"),
    ({"people": []}, "people", "at least one person"),
    ({"dataset": "huangpu-roads"}, "dataset", "is open"),
    ({"dataset": "no-such-data"}, "dataset", "does not exist"),
]


@pytest.mark.parametrize("change,field,words", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_malformed_application_names_the_field_and_writes_nothing(w, change, field, words):
    change = {k: (v(w) if callable(v) else v) for k, v in change.items()}
    before = counts()
    response = api_client(w.researcher).post(
        "/api/applications/", {**GOOD, **change}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400, response.content
    message = " ".join(map(str, response.json()[field]))
    assert words in message, message
    assert counts() == before


def test_steward_asks_for_changes_and_the_applicant_resubmits(w):
    from access.models import Application

    steward, researcher = api_client(w.steward), api_client(w.researcher)
    app = researcher.post("/api/applications/", GOOD, format="json").json()

    no_reason = steward.post(f"/api/applications/{app['id']}/request-changes/", {}, format="json")
    assert no_reason.status_code == 400 and "say what should change" in no_reason.json()["reason"][0]
    sent_back = steward.post(
        f"/api/applications/{app['id']}/request-changes/",
        {"reason": "narrow the fields to what the study needs"},
        format="json",
    )
    assert sent_back.status_code == 200 and sent_back.json()["status"] == "changes_requested"
    # Not decidable while it is with the applicant; still counts as pending for duplicates.
    assert steward.post(f"/api/applications/{app['id']}/approve/", {}, format="json").status_code == 409
    assert researcher.post("/api/applications/", GOOD, format="json").status_code == 409

    bad = researcher.post(f"/api/applications/{app['id']}/resubmit/", {"duration_days": 9999}, format="json")
    assert bad.status_code == 400 and "duration_days" in bad.json()
    assert Application.objects.get(pk=app["id"]).status == "changes_requested"

    again = researcher.post(
        f"/api/applications/{app['id']}/resubmit/",
        {"fields": ["floor"], "purpose": "pipe ageing study, floors only"},
        format="json",
    )
    assert again.status_code == 200, again.content
    data = again.json()
    assert data["status"] == "submitted" and data["fields"] == ["floor"] and data["duration_days"] == 30
    assert researcher.post(f"/api/applications/{app['id']}/resubmit/", {}, format="json").status_code == 409

    approved = steward.post(f"/api/applications/{app['id']}/approve/", {}, format="json").json()
    licence = researcher.get(f"/api/licences/{approved['licence']}/").json()
    reproduce = next(r for r in licence["policy"]["permission"] if r["action"] == "reproduce")
    fields = next(c for c in reproduce["constraint"] if c["leftOperand"] == "urn:miliao:odrl:field")
    assert fields["rightOperand"] == ["floor"]

    from provenance.models import LineageEvent

    types = list(
        LineageEvent.objects.filter(subject=f"access.application:{app['id']}").values_list(
            "event_type", flat=True
        )
    )
    assert types == [
        "access.application_submitted",
        "access.application_changes_requested",
        "access.application_resubmitted",
        "access.application_approved",
    ]


def test_separation_of_duties_holds_for_requests_for_changes(w):
    response = api_client(w.steward).post(
        f"/api/applications/{w.app_own_bureau.pk}/request-changes/", {"reason": "more detail"}, format="json"
    )
    assert response.status_code == 403 and "separation of duties" in response.json()["detail"]


def test_approval_terms_are_checked(w):
    before = counts()
    for body, field in (
        ({"download_limit": 0}, "download_limit"),
        ({"download_limit": "many"}, "download_limit"),
        ({"epsilon": "1"}, "epsilon"),
    ):
        response = api_client(w.steward).post(
            f"/api/applications/{w.app_startup.pk}/approve/", body, format="json"
        )
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    assert counts() == before


def test_a_release_without_a_fingerprint_grid_cannot_be_licensed(world):
    w = world
    spec_lightweight = {
        "simplify_tolerance_m": 0.5,
        "level_of_detail": "room",
        "grid_level": 18,
        "precision_m": 0.0,
        "keep_attributes": None,
    }
    publish_release(w, w.pipes, lightweight=spec_lightweight)
    before = counts()
    response = api_client(w.steward).post(f"/api/applications/{w.app_startup.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "cannot carry a recipient fingerprint" in response.json()["detail"]
    assert counts() == before
