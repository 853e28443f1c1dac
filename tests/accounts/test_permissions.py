"""Every API endpoint against every role: the allowed outcome and the refused one.

A refused request must also write nothing: the event log does not grow.
"""
from __future__ import annotations

import pytest

from conftest import api_client, per_test

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]

ANON = "anonymous"
ALL = [ANON, "applicant", "steward", "data_holder", "auditor", "admin"]


def expect(default, **per_role):
    """Expected status per role; anonymous callers are always refused with 401."""
    table = {role: default for role in ALL}
    table[ANON] = 401
    table.update(per_role)
    return table


# (name, method, path builder, body builder, expected status per role)
ENDPOINTS = [
    ("me", "get", lambda w: "/api/me/", None, expect(200)),
    ("token", "post", lambda w: "/api/auth/token/", None, None),  # covered by its own test
    ("organisations-list", "get", lambda w: "/api/organisations/", None, expect(200)),
    (
        "organisations-create",
        "post",
        lambda w: "/api/organisations/",
        lambda w: {"code": "new-startup", "name": "新创公司", "kind": "startup"},
        expect(403, admin=201),
    ),
    ("organisations-detail", "get", lambda w: f"/api/organisations/{w.startup.pk}/", None, expect(200)),
    ("users-list", "get", lambda w: "/api/users/", None, expect(200)),
    (
        "users-detail",
        "get",
        lambda w: f"/api/users/{w.applicant.pk}/",
        None,
        expect(404, applicant=200, auditor=200, admin=200),
    ),
    (
        "users-create",
        "post",
        lambda w: "/api/users/",
        lambda w: {
            "username": "newcomer", "password": "Another-horse-77", "role": "applicant",
            "organisation": "mili-tech",
        },
        expect(403, admin=201),
    ),
    ("datasets-list", "get", lambda w: "/api/datasets/", None, expect(200)),
    ("datasets-detail", "get", lambda w: f"/api/datasets/{w.rooms.slug}/", None, expect(200)),
    (
        "datasets-create",
        "post",
        lambda w: "/api/datasets/",
        lambda w: {"slug": "new-parcels", "title": "新地块", "data_class": "conditional"},
        expect(403, steward=201),
    ),
    ("applications-list", "get", lambda w: "/api/applications/", None, expect(200)),
    (
        # The startup's application: its own org, the owning bureau's steward and the
        # read-everything roles see it; a district data holder does not know it exists.
        "applications-detail",
        "get",
        lambda w: f"/api/applications/{w.app_startup.pk}/",
        None,
        expect(200, data_holder=404),
    ),
    (
        "applications-create",
        "post",
        lambda w: "/api/applications/",
        lambda w: {"dataset": "sz-parcels", "purpose": "compare parcel structure across cities"},
        expect(403, applicant=201),
    ),
    (
        "applications-approve",
        "post",
        lambda w: f"/api/applications/{w.app_startup.pk}/approve/",
        lambda w: {"reason": "purpose is clear"},
        expect(403, steward=200, data_holder=404),
    ),
    (
        "applications-reject",
        "post",
        lambda w: f"/api/applications/{w.app_lab.pk}/reject/",
        lambda w: {"reason": "area too large"},
        # The lab's application is invisible to the startup's applicant and the holder.
        expect(403, steward=200, applicant=404, data_holder=404),
    ),
    ("events-list", "get", lambda w: "/api/events/", None, expect(403, steward=200, auditor=200, admin=200)),
    ("events-detail", "get", lambda w: "/api/events/1/", None, expect(403, steward=200, auditor=200, admin=200)),
    ("events-verify", "post", lambda w: "/api/events/verify/", lambda w: {}, expect(403, auditor=202, admin=202)),
    ("tasks-list", "get", lambda w: "/api/tasks/", None, expect(200)),
    (
        # A task started by the bureau's steward: visible to its organisation and to auditors.
        "tasks-detail",
        "get",
        lambda w: f"/api/tasks/{w.steward_task.pk}/",
        None,
        expect(404, steward=200, auditor=200, admin=200),
    ),
    # The schema and its docs are public (API clients and generators fetch them without a token).
    ("schema", "get", lambda w: "/api/schema/", None, expect(200, anonymous=200)),
    ("docs", "get", lambda w: "/api/docs/", None, expect(200, anonymous=200)),
    # A path under /api/ that names no operation: a JSON 404 for everyone.
    ("api-not-found", "get", lambda w: "/api/no-such-thing/7/", None, expect(404, anonymous=404)),
]
# Endpoints of the release pipeline: their world also holds a corpus version, a policy and a
# built (unpublished) release of the open roads dataset owned by the steward's bureau.
RELEASE_ENDPOINTS = [
    ("corpus-versions-list", "get", lambda w: "/api/corpus-versions/", None, expect(200)),
    ("corpus-versions-detail", "get", lambda w: f"/api/corpus-versions/{w.corpus.pk}/", None, expect(200)),
    (
        "corpus-versions-ingest",
        "post",
        lambda w: "/api/corpus-versions/ingest/",
        lambda w: {"dataset": "huangpu-roads", "seed": 5, "rooms": 200},
        expect(403, steward=202),
    ),
    ("release-policies-list", "get", lambda w: "/api/release-policies/", None, expect(200)),
    ("release-policies-detail", "get", lambda w: f"/api/release-policies/{w.policy.pk}/", None, expect(200)),
    (
        "release-policies-create",
        "post",
        lambda w: "/api/release-policies/",
        lambda w: {"dataset": "huangpu-roads", "spec": {"data_class": "open"}},
        expect(403, steward=201),
    ),
    (
        "release-policies-preview",
        "post",
        lambda w: "/api/release-policies/preview/",
        lambda w: {"corpus_version": w.corpus.pk, "spec": {"data_class": "open"}, "units": 2000},
        expect(403, steward=200),
    ),
    ("releases-list", "get", lambda w: "/api/releases/", None, expect(200)),
    (
        # Unpublished: only the owning bureau and the read-everything roles see it.
        "releases-detail",
        "get",
        lambda w: f"/api/releases/{w.release.pk}/",
        None,
        expect(404, steward=200, auditor=200, admin=200),
    ),
    (
        "releases-create",
        "post",
        lambda w: "/api/releases/",
        lambda w: {"corpus_version": w.corpus.pk, "policy": w.policy.pk},
        expect(403, steward=202),
    ),
    (
        "releases-publish",
        "post",
        lambda w: f"/api/releases/{w.release.pk}/publish/",
        lambda w: {},
        expect(404, steward=200, auditor=403, admin=403),
    ),
    (
        # An open release's file (its DCAT downloadURL): not before it is published.
        "api-release-file",
        "get",
        lambda w: f"/api/releases/{w.release.pk}/files/geoparquet/",
        None,
        expect(404, steward=403, auditor=403, admin=403),
    ),
]
MATRIX = [(name, role) for name, *_rest, table in ENDPOINTS if table for role in ALL]
RELEASE_MATRIX = [(name, role) for name, *_rest in RELEASE_ENDPOINTS for role in ALL]

# The ledger: lineage, proofs and anchoring are for auditors, admins and stewards; only
# auditors and admins verify (which reads the chain and changes nothing).
AUDIT_READ = expect(403, steward=200, auditor=200, admin=200)
LEDGER_ENDPOINTS = [
    ("lineage-list", "get", lambda w: f"/api/lineage/?subject=access.application:{w.app_startup.pk}", None, AUDIT_READ),
    ("lineage-prov", "get", lambda w: f"/api/lineage/prov/?subject=access.application:{w.app_startup.pk}", None,
     AUDIT_READ),
    ("lineage-verify", "post", lambda w: "/api/lineage/verify/",
     lambda w: {"subject": f"access.application:{w.app_startup.pk}"}, expect(403, auditor=200, admin=200)),
    # Nothing is anchored in this world yet: the allowed roles are told so (404 with the lag).
    ("events-proof", "get", lambda w: "/api/events/1/proof/", None, expect(403, steward=404, auditor=404, admin=404)),
    ("anchors-list", "get", lambda w: "/api/anchors/", None, AUDIT_READ),
    ("anchors-status", "get", lambda w: "/api/anchors/status/", None, AUDIT_READ),
]
LEDGER_MATRIX = [(name, role) for name, *_rest in LEDGER_ENDPOINTS for role in ALL]

# The catalog and active defense, on the plain world (an alert raised through the action).
ACCESS_ENDPOINTS = [
    # The open-data catalogue is for anyone; anonymous readers do not see the other classes.
    ("datasets-catalog-dcat", "get", lambda w: "/api/datasets/dcat/", None, expect(200, anonymous=200)),
    ("datasets-dcat", "get", lambda w: f"/api/datasets/{w.rooms.slug}/dcat/", None, expect(200, anonymous=404)),
    ("alerts-list", "get", lambda w: "/api/alerts/", None, expect(200)),
    ("alerts-detail", "get", lambda w: f"/api/alerts/{w.alert.pk}/", None, expect(404, steward=200, auditor=200, admin=200)),
    ("alerts-acknowledge", "post", lambda w: f"/api/alerts/{w.alert.pk}/acknowledge/", lambda w: {"note": "handled"},
     expect(404, steward=200, auditor=403, admin=403)),
]
ACCESS_MATRIX = [(name, role) for name, *_rest in ACCESS_ENDPOINTS for role in ALL]


@pytest.mark.access
@pytest.mark.parametrize("name,role", ACCESS_MATRIX, ids=[f"{n}-{r}" for n, r in ACCESS_MATRIX])
def test_access_role_endpoint_matrix(world, name, role):
    from defense.actions import raise_alert

    world.alert = raise_alert(kind="similar_requests", severity="warning", bureau=world.bureau,
                              subject=f"catalog.dataset:{world.rooms.pk}", message="two fronts ask alike")
    _check_endpoint(world, ACCESS_ENDPOINTS, name, role)


# Routes whose role table lives beside their feature, because it needs a world this module
# does not build (a published release and a licence, a granted budget): route -> (test
# module, its table, the row). The coverage test below checks that each row is there.
COVERED_ELSEWHERE = {
    "licence-list": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-list"),
    "licence-detail": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-detail"),
    "licence-suspend": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-suspend"),
    "licence-revoke": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-revoke"),
    "licence-reinstate": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-reinstate"),
    "licence-links": ("tests/access/test_access_roles.py", "ENDPOINTS", "licences-links"),
    "download-link-list": ("tests/access/test_access_roles.py", "ENDPOINTS", "download-links"),
    "api-download": ("tests/access/test_access_roles.py", "ENDPOINTS", "downloads"),
    "leak-list": ("tests/access/test_access_roles.py", "ENDPOINTS", "leaks-list"),
    "leak-detail": ("tests/access/test_access_roles.py", "ENDPOINTS", "leaks-detail"),
    "application-resubmit": ("tests/access/test_access_roles.py", "ENDPOINTS", "applications-resubmit"),
    "application-request-changes": ("tests/access/test_access_roles.py", "ENDPOINTS", "applications-request-changes"),
    "budget-list": ("tests/budgets/test_budget_roles.py", "TABLE", "api-list"),
    "budget-detail": ("tests/budgets/test_budget_roles.py", "TABLE", "api-detail"),
    "budget-refund": ("tests/budgets/test_budget_roles.py", "TABLE", "api-refund"),
    "district-node-list": ("tests/federation/test_node_roles.py", "TABLE", "nodes-list"),
    "district-node-revoke": ("tests/federation/test_node_roles.py", "TABLE", "nodes-revoke"),
    "district-node-publish": ("tests/federation/test_node_roles.py", "TABLE", "nodes-publish"),
    "job-list": ("tests/jobs/test_job_roles.py", "TABLE", "jobs-list"),
    "job-detail": ("tests/jobs/test_job_roles.py", "TABLE", "jobs-detail"),
    "job-approve": ("tests/jobs/test_job_roles.py", "TABLE", "jobs-approve"),
    "job-reject": ("tests/jobs/test_job_roles.py", "TABLE", "jobs-reject"),
    "job-release": ("tests/jobs/test_job_roles.py", "TABLE", "jobs-release"),
    "model-list": ("tests/jobs/test_job_roles.py", "TABLE", "models-list"),
    "model-detail": ("tests/jobs/test_job_roles.py", "TABLE", "models-detail"),
    "model-weights": ("tests/jobs/test_job_roles.py", "TABLE", "models-weights"),
    "job-outputs": ("tests/jobs/test_code_to_data_roles.py", "TABLE", "job-outputs"),
    "job-held-output": ("tests/jobs/test_exfiltration.py", "TABLE", "job-held-output"),
    "syft-dataset-list": ("tests/jobs/test_code_to_data_roles.py", "TABLE", "syft-list"),
    "syft-dataset-detail": ("tests/jobs/test_code_to_data_roles.py", "TABLE", "syft-detail"),
    "syft-dataset-mock": ("tests/jobs/test_code_to_data_roles.py", "TABLE", "syft-mock"),
    "sandbox-policy-detail": ("tests/jobs/test_code_to_data_roles.py", "TABLE", "policy-set"),
    "scenario-list": ("tests/innovation/test_innovation_roles.py", "TABLE", "scenarios"),
    "scenario-detail": ("tests/innovation/test_innovation_roles.py", "TABLE", "scenario"),
    "scenario-follow": ("tests/innovation/test_innovation_roles.py", "TABLE", "scenario-follow"),
    "scenario-deploy": ("tests/innovation/test_innovation_roles.py", "TABLE", "scenario-deploy"),
    "challenge-list": ("tests/innovation/test_innovation_roles.py", "TABLE", "challenges"),
    "challenge-detail": ("tests/innovation/test_innovation_roles.py", "TABLE", "challenge"),
    "challenge-starter-kit": ("tests/innovation/test_innovation_roles.py", "TABLE", "starter-kit"),
    "challenge-leaderboard": ("tests/innovation/test_innovation_roles.py", "TABLE", "leaderboard"),
    "challenge-private-board": ("tests/innovation/test_innovation_roles.py", "SHOWCASE_TABLE",
                                "showcase-private-board"),
    "challenge-close": ("tests/innovation/test_innovation_roles.py", "TABLE", "close"),
    "challenge-teams": ("tests/innovation/test_innovation_roles.py", "TABLE", "team-register"),
    "team-detail": ("tests/innovation/test_innovation_roles.py", "TABLE", "team"),
    "team-invite": ("tests/innovation/test_innovation_roles.py", "TABLE", "team-invite"),
    "team-leave": ("tests/innovation/test_innovation_roles.py", "MEMBER_TABLE", "team-leave"),
    "invitation-list": ("tests/innovation/test_innovation_roles.py", "TABLE", "invitations"),
    "invitation-accept": ("tests/innovation/test_innovation_roles.py", "TABLE", "invitation-accept"),
    "invitation-decline": ("tests/innovation/test_innovation_roles.py", "TABLE", "invitation-decline"),
    "submission-list": ("tests/innovation/test_innovation_roles.py", "TABLE", "submit"),
    "submission-detail": ("tests/innovation/test_innovation_roles.py", "TABLE", "submission"),
    "submission-final": ("tests/innovation/test_innovation_roles.py", "TABLE", "submission-final"),
    "submission-proof": ("tests/innovation/test_innovation_roles.py", "TABLE", "submission-proof"),
    "showcase-list": ("tests/innovation/test_innovation_roles.py", "SHOWCASE_TABLE", "showcase-share"),
    "showcase-detail": ("tests/innovation/test_innovation_roles.py", "SHOWCASE_TABLE", "showcase-item"),
    "showcase-verify": ("tests/innovation/test_innovation_roles.py", "SHOWCASE_TABLE", "showcase-verify"),
    "showcase-weights": ("tests/innovation/test_innovation_roles.py", "SHOWCASE_TABLE", "showcase-weights"),
    "api-innovation-metrics": ("tests/innovation/test_innovation_roles.py", "TABLE", "metrics"),
}


@pytest.mark.ledger
@pytest.mark.parametrize("name,role", LEDGER_MATRIX, ids=[f"{n}-{r}" for n, r in LEDGER_MATRIX])
def test_ledger_role_endpoint_matrix(world, name, role):
    _check_endpoint(world, LEDGER_ENDPOINTS, name, role)


@pytest.fixture(scope="module")
def shared_world(request, django_db_setup, django_db_blocker):
    """The world, with a built release when the parameter says "release", built once per module
    for each variant (pytest tears one down before it builds the other). Each test works on a
    copy of it inside a savepoint of its own (`world`, `release_world` below)."""
    from conftest import add_release, build_world, rolled_back_at_the_end

    with rolled_back_at_the_end(django_db_blocker):
        w = build_world()
        yield add_release(w) if getattr(request, "param", "plain") == "release" else w


@pytest.fixture
def world(shared_world):
    return per_test(shared_world)


@pytest.fixture
def release_world(shared_world):
    assert hasattr(shared_world, "release"), 'parametrize shared_world with "release"'
    return per_test(shared_world)


@pytest.mark.release
@pytest.mark.parametrize("shared_world", ["release"], indirect=True)
@pytest.mark.parametrize("name,role", RELEASE_MATRIX, ids=[f"{n}-{r}" for n, r in RELEASE_MATRIX])
def test_release_role_endpoint_matrix(release_world, name, role):
    _check_endpoint(release_world, RELEASE_ENDPOINTS, name, role)


@pytest.mark.parametrize("name,role", MATRIX, ids=[f"{n}-{r}" for n, r in MATRIX])
def test_role_endpoint_matrix(world, name, role):
    _check_endpoint(world, ENDPOINTS, name, role)


def _check_endpoint(world, endpoints, name, role):
    from provenance.models import LineageEvent

    _, method, path, body, table = next(e for e in endpoints if e[0] == name)
    client = api_client(None if role == ANON else world.by_role[role])
    events_before = LineageEvent.objects.count()
    kwargs = {"format": "json"} if body else {}
    response = getattr(client, method)(path(world), body(world) if body else None, **kwargs)
    expected = table[role]
    assert response.status_code == expected, (name, role, response.status_code, getattr(response, "data", None))
    if expected >= 400:
        assert LineageEvent.objects.count() == events_before, "a refused request wrote an event"
        if expected == 403:
            assert response.json()["detail"], "a refusal says why"
    elif method == "post" and name not in {
        "events-verify", "corpus-versions-ingest", "release-policies-preview", "lineage-verify",
    }:
        # (Verification and ingest record their event when their task finishes; a preview and
        # a lineage check record none.)
        assert LineageEvent.objects.count() == events_before + 1, "an allowed change records one event"


def _api_route_names(patterns, prefix=""):
    from django.urls import URLPattern, URLResolver

    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _api_route_names(p.url_patterns, route)
        elif isinstance(p, URLPattern) and route.startswith("api/") and p.name and "format" not in route:
            yield p.name


@pytest.mark.release
@pytest.mark.parametrize("shared_world", ["release"], indirect=True)
def test_every_api_route_is_in_the_matrix(release_world):
    """A new API endpoint without a row in ENDPOINTS fails here."""
    from django.urls import get_resolver, resolve

    import importlib.util

    from conftest import REPO

    from defense.actions import raise_alert

    w = release_world
    w.alert = raise_alert(kind="similar_requests", severity="warning", bureau=w.bureau,
                          subject=f"catalog.dataset:{w.rooms.pk}", message="two fronts ask alike")
    rows = ENDPOINTS + RELEASE_ENDPOINTS + LEDGER_ENDPOINTS + ACCESS_ENDPOINTS
    covered = {resolve(path(w).split("?")[0]).url_name for _, _, path, _, _ in rows} | {"api-root"}
    for route, (module_path, table, row) in COVERED_ELSEWHERE.items():
        spec = importlib.util.spec_from_file_location(f"roles_{route}", REPO / module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert row in {entry[0] for entry in getattr(module, table)}, f"{route}: no row {row!r} in {module_path}"
        covered.add(route)
    routes = set(_api_route_names(get_resolver().url_patterns))
    assert routes - covered == set(), "endpoints missing from the role matrix"


def test_anonymous_pages_redirect_to_login(client):
    for path in ["/", "/events/", "/admin/"]:
        response = client.get(path)
        assert response.status_code == 302 and "login" in response["Location"], path


def test_token_is_issued_for_valid_credentials_only(world, client):
    from conftest import PASSWORD

    ok = client.post("/api/auth/token/", {"username": "applicant", "password": PASSWORD})
    assert ok.status_code == 200 and len(ok.json()["token"]) == 40
    bad = client.post("/api/auth/token/", {"username": "applicant", "password": "wrong"})
    assert bad.status_code == 400 and "non_field_errors" in bad.json()
    me = api_client().get("/api/me/", HTTP_AUTHORIZATION=f"Token {ok.json()['token']}")
    assert me.json()["role"] == "applicant" and me.json()["organisation"]["code"] == "mili-tech"


def test_applicant_sees_only_its_organisations_applications(world):
    data = api_client(world.applicant).get("/api/applications/").json()
    assert {a["organisation"] for a in data["results"]} == {"mili-tech"}
    assert [a["id"] for a in data["results"]] == [world.app_startup.pk]


def test_steward_sees_applications_for_its_datasets_and_its_own(world):
    ids = {a["id"] for a in api_client(world.steward).get("/api/applications/").json()["results"]}
    assert ids == {world.app_startup.pk, world.app_lab.pk, world.app_own_bureau.pk}
    other = {a["id"] for a in api_client(world.other_steward).get("/api/applications/").json()["results"]}
    assert other == set()


def test_auditor_and_admin_see_every_application_and_user(world):
    from accounts.models import User

    for user in (world.auditor, world.admin):
        client = api_client(user)
        assert client.get("/api/applications/").json()["count"] == 3
        assert client.get("/api/users/").json()["count"] == User.objects.count()


def test_non_auditors_see_only_their_organisations_users(world):
    data = api_client(world.applicant).get("/api/users/").json()
    assert [u["username"] for u in data["results"]] == ["applicant"]


def test_separation_of_duties_steward_cannot_approve_own_organisation(world):
    from access.models import Application

    response = api_client(world.steward).post(
        f"/api/applications/{world.app_own_bureau.pk}/approve/", {"reason": "ok"}, format="json"
    )
    assert response.status_code == 403
    assert "separation of duties" in response.json()["detail"]
    assert Application.objects.get(pk=world.app_own_bureau.pk).status == "submitted"


def test_steward_of_another_bureau_cannot_decide(world):
    response = api_client(world.other_steward).post(
        f"/api/applications/{world.app_startup.pk}/approve/", {}, format="json"
    )
    # It cannot even see an application for another bureau's dataset.
    assert response.status_code == 404


def test_steward_cannot_register_a_dataset_for_another_bureau(world):
    from catalog import actions
    from catalog import rules as catalog_rules
    from kernel.errors import Refused

    with pytest.raises(Refused, match="own bureau"):
        catalog_rules.check_register_dataset(world.steward, world.other_bureau)
    # Through the action, the owner is always the steward's own bureau.
    dataset = actions.register_dataset(actor=world.other_steward, slug="sz-roads", title="道路", data_class="open")
    assert dataset.owner == world.other_bureau


def test_deciding_twice_is_a_conflict(world):
    client = api_client(world.steward)
    first = client.post(f"/api/applications/{world.app_startup.pk}/approve/", {}, format="json")
    assert first.status_code == 200 and first.json()["status"] == "approved"
    second = client.post(f"/api/applications/{world.app_startup.pk}/reject/", {"reason": "x"}, format="json")
    assert second.status_code == 409 and "already approved" in second.json()["detail"].lower()


def test_auditor_changes_nothing_even_with_a_valid_body(world):
    from accounts.models import Organisation

    client = api_client(world.auditor)
    before = Organisation.objects.count()
    response = client.post(
        "/api/organisations/", {"code": "audit-x", "name": "X", "kind": "startup"}, format="json"
    )
    assert response.status_code == 403 and "auditors" in response.json()["detail"]
    assert Organisation.objects.count() == before
