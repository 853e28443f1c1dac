"""Bad input gets a JSON answer naming the field, and nothing is written."""
from __future__ import annotations

import pytest

from conftest import api_client

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]


def _counts():
    from access.models import Application
    from accounts.models import Organisation, User
    from catalog.models import Dataset
    from provenance.models import LineageEvent

    return tuple(m.objects.count() for m in (Application, Organisation, User, Dataset, LineageEvent))


CASES = [
    ("applicant", "/api/applications/", {"dataset": "district-rooms", "purpose": "short"}, 400, "purpose", "10 to 4000"),
    ("applicant", "/api/applications/", {"dataset": "district-rooms", "purpose": "x" * 5000}, 400, "purpose", "10 to 4000"),
    ("applicant", "/api/applications/", {"purpose": "a long enough purpose"}, 400, "dataset", "required"),
    ("applicant", "/api/applications/", {"dataset": "no-such-data", "purpose": "a long enough purpose"}, 400, "dataset", "does not exist"),
    ("applicant", "/api/applications/", {"dataset": "huangpu-roads", "purpose": "a long enough purpose"}, 400, "dataset", "is open"),
    ("applicant", "/api/applications/", {"dataset": "pudong-pipes", "purpose": "a second request"}, 409, "detail", "already has an application"),
    ("admin", "/api/users/", {"username": "weak", "password": "123", "role": "applicant", "organisation": "mili-tech"}, 400, "password", "too short"),
    ("admin", "/api/users/", {"username": "steward2", "password": "Another-horse-77", "role": "steward", "organisation": "mili-tech"}, 400, "organisation", "Bureau"),
    ("admin", "/api/users/", {"username": "applicant", "password": "Another-horse-77", "role": "applicant", "organisation": "mili-tech"}, 400, "username", "taken"),
    ("admin", "/api/users/", {"username": "x y", "password": "Another-horse-77", "role": "applicant", "organisation": "mili-tech"}, 400, "username", "letters"),
    ("admin", "/api/users/", {"username": "ok-name", "password": "Another-horse-77", "role": "emperor", "organisation": "mili-tech"}, 400, "role", "not a valid choice"),
    ("admin", "/api/organisations/", {"code": "Bad Code!", "name": "X", "kind": "startup"}, 400, "code", "letters, numbers, underscores or hyphens"),
    ("admin", "/api/organisations/", {"code": "mili-tech", "name": "Another", "kind": "startup"}, 400, "code", "already exists"),
    ("admin", "/api/organisations/", {"code": "newco", "name": "Y", "kind": "kingdom"}, 400, "kind", "not a valid choice"),
    ("steward", "/api/datasets/", {"slug": "ok-slug", "title": "T", "data_class": "secret"}, 400, "data_class", "not a valid choice"),
    ("steward", "/api/datasets/", {"slug": "ok-slug", "title": "T", "data_class": "open", "holders": ["mili-tech"]}, 400, "holders", "not a district"),
    ("steward", "/api/datasets/", {"slug": "district-rooms", "title": "T", "data_class": "open"}, 400, "slug", "already exists"),
    ("steward", "/api/datasets/", {"slug": "ok-slug", "title": "  ", "data_class": "open"}, 400, "title", ""),
]


@pytest.mark.parametrize("role,path,body,status,field,words", CASES, ids=[f"{c[1]}-{c[4]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_names_the_field_and_writes_nothing(world, role, path, body, status, field, words):
    before = _counts()
    response = api_client(world.by_role[role]).post(path, body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == status, response.content
    data = response.json()
    assert field in data, data
    message = data[field] if isinstance(data[field], str) else " ".join(map(str, data[field]))
    assert words in message
    assert _counts() == before


def test_rejection_without_reason_changes_nothing(world):
    before = _counts()
    response = api_client(world.steward).post(f"/api/applications/{world.app_startup.pk}/reject/", {}, format="json")
    assert response.status_code == 400 and "must say why" in response.json()["reason"][0]
    world.app_startup.refresh_from_db()
    assert world.app_startup.status == "submitted" and _counts() == before


def test_malformed_json_is_refused_clearly(world):
    response = api_client(world.applicant).post(
        "/api/applications/", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]


def test_oversized_request_body_is_refused(world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api_client(world.applicant).post(
        "/api/applications/", {"dataset": "district-rooms", "purpose": "x" * 20_000}, format="json"
    )
    assert response.status_code == 400
    assert _counts()[0] == 3
