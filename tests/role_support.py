"""Role matrices: an endpoint or page asked by each role of the small world, the answer
checked, and a refused request shown to write nothing (the event log does not grow)."""
from __future__ import annotations

from conftest import api_client

# Every role of the small world (`build_world`); "applicant" is of the startup that applies,
# "researcher" of another.
ROLES = ["anonymous", "researcher", "applicant", "steward", "other_steward", "data_holder", "auditor", "admin"]


def row(**statuses):
    """A matrix row: the status each role gets, every role named once."""
    assert set(statuses) == set(ROLES), set(ROLES) ^ set(statuses)
    return statuses


def request_as(w, role: str, method: str, path: str, body=None):
    """`role` is an attribute of the world naming a user, or "anonymous"."""
    user = None if role == "anonymous" else getattr(w, role)
    if path.startswith("/api/"):
        client = api_client(user)
        return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
    return getattr(client, method)(path, body or {})


def assert_answers(w, role: str, method: str, path: str, body, expected: dict, done):
    """The request answers `expected[role]`; an event was written exactly when it answered
    `done` (the status meaning "it was done") to a logged-in user."""
    from provenance.models import LineageEvent

    before = LineageEvent.objects.count()
    response = request_as(w, role, method, path, body)
    assert response.status_code == expected[role], getattr(response, "content", b"")[:300]
    if role == "anonymous" and not path.startswith("/api/"):
        assert "/accounts/login/" in response["Location"]
    wrote = LineageEvent.objects.count() != before
    assert wrote == (expected[role] == done and role != "anonymous"), (before, LineageEvent.objects.count())
    return response
