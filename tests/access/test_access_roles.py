"""Every access endpoint against every role: the allowed outcome and the refused one.

Roles: anonymous; the startup's applicant (the licensee, named on its licence); the lab's
researcher (an applicant of another organisation); the owning bureau's steward; another
bureau's steward; a district data holder; an auditor; an admin. A refused request writes
nothing; an allowed one writes what it says (links write nothing, a download one event).
"""

from __future__ import annotations

import pytest

from access_support import counts, leak_file, licensed_world, release_base
from conftest import api_client, build_world, per_test, rolled_back_at_the_end

pytestmark = [pytest.mark.access, pytest.mark.django_db]

ROLES = ["anonymous", "applicant", "researcher", "steward", "other_steward", "holder", "auditor", "admin"]


def expect(default, **per_role):
    table = {role: default for role in ROLES}
    table["anonymous"] = 401
    table.update(per_role)
    return table


def user(w, role):
    return (
        None
        if role == "anonymous"
        else {
            "applicant": w.applicant,
            "researcher": w.researcher,
            "steward": w.steward,
            "other_steward": w.other_steward,
            "holder": w.data_holder,
            "auditor": w.auditor,
            "admin": w.admin,
        }[role]
    )


def _licensed(w):
    return licensed_world(w)


def _suspended(w):
    from access import actions

    licensed_world(w)
    actions.suspend_licence(actor=w.steward, licence=w.licence, reason="checking")
    return w


def _open_release(w):
    from conftest import add_release
    from releases import actions as release_actions

    add_release(w)
    release_actions.publish_release(actor=w.steward, release=w.release)
    return w


def _link(w):
    from access import downloads

    licensed_world(w)
    w.url = downloads.issue_licence_link(actor=w.applicant, licence=w.licence, fmt="geojson").url
    return w


def _finding(w):
    from access import actions
    from django.core.files.uploadedfile import SimpleUploadedFile

    licensed_world(w)
    base, _ = release_base(w.pipes_release)
    upload = leak_file(base[:30])
    w.finding = actions.trace_leak(
        actor=w.auditor, upload=SimpleUploadedFile("leak.geojson", upload.getvalue())
    )
    return w


def _changes_requested(w):
    from access import actions

    actions.request_changes(actor=w.steward, application=w.app_lab, reason="narrow the area")
    return w


def _leak_upload(w):
    licensed_world(w)
    base, _ = release_base(w.pipes_release)
    w.upload = base[:30]
    return w


# (name, method, path, body, prepare, expected status per role, events an allowed call writes)
ENDPOINTS = [
    ("licences-list", "get", lambda w: "/api/licences/", None, _licensed, expect(200), 0),
    (
        "licences-detail",
        "get",
        lambda w: f"/api/licences/{w.licence.pk}/",
        None,
        _licensed,
        expect(404, applicant=200, steward=200, auditor=200, admin=200),
        0,
    ),
    (
        "licences-suspend",
        "post",
        lambda w: f"/api/licences/{w.licence.pk}/suspend/",
        lambda w: {"reason": "under review"},
        _licensed,
        expect(404, applicant=403, steward=200, auditor=403, admin=403),
        1,
    ),
    (
        "licences-revoke",
        "post",
        lambda w: f"/api/licences/{w.licence.pk}/revoke/",
        lambda w: {"reason": "leaked"},
        _licensed,
        expect(404, applicant=403, steward=200, auditor=403, admin=403),
        1,
    ),
    (
        "licences-reinstate",
        "post",
        lambda w: f"/api/licences/{w.licence.pk}/reinstate/",
        lambda w: {"reason": "cleared"},
        _suspended,
        expect(404, applicant=403, steward=200, auditor=403, admin=403),
        1,
    ),
    (
        "licences-links",
        "post",
        lambda w: f"/api/licences/{w.licence.pk}/links/",
        lambda w: {"format": "geojson"},
        _licensed,
        expect(404, applicant=201, steward=403, auditor=403, admin=403),
        0,
    ),
    (
        "download-links",
        "post",
        lambda w: "/api/download-links/",
        lambda w: {"release": w.release.pk, "format": "geojson"},
        _open_release,
        expect(201),
        0,
    ),
    ("downloads", "get", lambda w: w.url, None, _link, expect(403, applicant=200), 1),
    (
        "leaks-list",
        "get",
        lambda w: "/api/leaks/",
        None,
        _licensed,
        expect(403, steward=200, other_steward=200, auditor=200, admin=200),
        0,
    ),
    (
        "leaks-detail",
        "get",
        lambda w: f"/api/leaks/{w.finding.pk}/",
        None,
        _finding,
        expect(403, steward=200, other_steward=404, auditor=200, admin=200),
        0,
    ),
    (
        "leaks-create",
        "multipart",
        lambda w: "/api/leaks/",
        lambda w: {"file": leak_file(w.upload)},
        _leak_upload,
        expect(403, auditor=201),
        1,
    ),
    (
        # The lab's application for the bureau's compute-only rooms.
        "applications-request-changes",
        "post",
        lambda w: f"/api/applications/{w.app_lab.pk}/request-changes/",
        lambda w: {"reason": "narrow the area"},
        lambda w: w,
        expect(404, researcher=403, steward=200, auditor=403, admin=403),
        1,
    ),
    (
        "applications-resubmit",
        "post",
        lambda w: f"/api/applications/{w.app_lab.pk}/resubmit/",
        lambda w: {"purpose": "room-use classification, one district only"},
        _changes_requested,
        expect(404, researcher=200, steward=403, auditor=403, admin=403),
        1,
    ),
]
MATRIX = [(name, role) for name, *_rest in ENDPOINTS for role in ROLES]


@pytest.fixture(scope="module")
def prepared_world(request, django_db_setup, django_db_blocker):
    """A row's `prepare` (the parameter) applied to the world, once per module for each prepare
    function: pytest groups the cases by it and tears one down before it builds the next. Each
    case asks on a copy of it inside a savepoint of its own."""
    with rolled_back_at_the_end(django_db_blocker):
        yield request.param(build_world())


@pytest.mark.parametrize("prepared_world,name,role", [(e[4], e[0], role) for e in ENDPOINTS for role in ROLES],
                         indirect=["prepared_world"], ids=[f"{n}-{r}" for n, r in MATRIX], scope="module")
def test_access_role_endpoint_matrix(prepared_world, name, role):
    from provenance.models import LineageEvent

    _, method, path, body, prepare, table, writes = next(e for e in ENDPOINTS if e[0] == name)
    w = per_test(prepared_world)
    client = api_client(user(w, role))
    before, events_before = counts(), LineageEvent.objects.count()
    if method == "multipart":
        response = client.post(path(w), body(w), format="multipart")
    elif body:
        response = getattr(client, method)(path(w), body(w), format="json")
    else:
        response = getattr(client, method)(path(w))
    expected = table[role]
    assert response.status_code == expected, (name, role, response.status_code, response.content[:300])
    if expected >= 400:
        assert counts() == before, "a refused request wrote something"
        if expected == 403:
            assert response.json()["detail"], "a refusal says why"
    else:
        assert LineageEvent.objects.count() == events_before + writes


@pytest.mark.parametrize("prepared_world", [_licensed], indirect=True, ids=["licensed"])
def test_each_role_lists_only_the_licences_it_may_see(prepared_world):
    w = per_test(prepared_world)
    seen = {role: api_client(user(w, role)).get("/api/licences/").json()["count"] for role in ROLES[1:]}
    assert seen == {
        "applicant": 1,
        "researcher": 0,
        "steward": 1,
        "other_steward": 0,
        "holder": 0,
        "auditor": 1,
        "admin": 1,
    }
