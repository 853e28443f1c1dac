"""Every budget endpoint and page against every role. The budget belongs to the startup
(mili-tech) on a dataset of the steward's bureau; a refused request writes nothing."""
from __future__ import annotations

import pytest

from conftest import api_client, build_world, per_test, rolled_back_at_the_end
from role_support import ROLES, request_as, row

pytestmark = [pytest.mark.access, pytest.mark.django_db]

# (name, method, path, body, expected status per role, status meaning "it was done")
TABLE = [
    ("api-list", "get", lambda w: "/api/budgets/", None,
     row(anonymous=401, applicant=200, researcher=200, steward=200, other_steward=200, data_holder=200,
         auditor=200, admin=200), None),
    ("api-detail", "get", lambda w: f"/api/budgets/{w.budget.pk}/", None,
     row(anonymous=401, applicant=200, researcher=404, steward=200, other_steward=404, data_holder=404,
         auditor=200, admin=200), None),
    ("api-refund", "post", lambda w: f"/api/budgets/{w.budget.pk}/refund/",
     lambda w: {"entry": w.spent.pk, "epsilon": "0.5", "reason": "job failed before training"},
     row(anonymous=401, applicant=403, researcher=404, steward=201, other_steward=404, data_holder=404,
         auditor=403, admin=403), 201),
    ("page", "get", lambda w: f"/budgets/{w.budget.pk}/", None,
     row(anonymous=302, applicant=200, researcher=404, steward=200, other_steward=404, data_holder=404,
         auditor=200, admin=200), None),
    ("page-refund", "post", lambda w: f"/budgets/{w.budget.pk}/refund/",
     lambda w: {"entry": w.spent.pk, "epsilon": "0.5", "reason": "job failed before training"},
     row(anonymous=302, applicant=403, researcher=404, steward=302, other_steward=404, data_holder=404,
         auditor=403, admin=403), 302),
]

# How many budgets the list shows each role: the two of the startup are on the bureau's datasets.
VISIBLE = row(anonymous=None, applicant=2, researcher=0, steward=2, other_steward=0, data_holder=0, auditor=2, admin=2)


def budget_world(w):
    from budgets import actions

    source = f"access.application:{w.app_startup.pk}"
    w.budget = actions.grant_budget(actor=w.steward, organisation=w.startup, dataset=w.rooms, epsilon="5",
                                    delta="0.00001", source=source)
    actions.grant_budget(actor=w.steward, organisation=w.startup, dataset=w.pipes, epsilon="1",
                         delta="0.00001", source=source)
    w.spent = actions.spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon="2",
                            job="sandbox.job:3", reason="DP-SGD training run")
    return w


CASES = [(name, role) for name, *_ in TABLE for role in ROLES]


@pytest.fixture(scope="module")
def shared_budget_world(django_db_setup, django_db_blocker):
    """`budget_world` built once per module, rolled back at its end."""
    with rolled_back_at_the_end(django_db_blocker):
        yield budget_world(build_world())


@pytest.fixture
def budgeted(shared_budget_world):
    """The test's own copy of the module's budget world; its changes are rolled back."""
    return per_test(shared_budget_world)


@pytest.mark.parametrize("name,role", CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_budget_endpoint_answers_each_role(budgeted, name, role):
    from budgets.models import BudgetEntry
    from provenance.models import LineageEvent

    _, method, path, body, expected, done = next(t for t in TABLE if t[0] == name)
    w = budgeted
    before = (LineageEvent.objects.count(), BudgetEntry.objects.count())
    response = request_as(w, role, method, path(w), body(w) if body else None)
    assert response.status_code == expected[role], getattr(response, "content", b"")[:300]
    if role == "anonymous" and not path(w).startswith("/api/"):
        assert "/accounts/login/" in response["Location"]
    if method == "post":
        wrote = (LineageEvent.objects.count(), BudgetEntry.objects.count()) != before
        assert wrote == (expected[role] == done and role != "anonymous")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_the_list_shows_each_role_only_its_budgets(budgeted, role):
    w = budgeted
    data = request_as(w, role, "get", "/api/budgets/").json()
    assert data["count"] == VISIBLE[role]


def test_the_list_filters_by_dataset_and_organisation(budgeted):
    w = budgeted
    client = api_client(w.auditor)
    assert [b["dataset"] for b in client.get("/api/budgets/?dataset=district-rooms").json()["results"]] == ["district-rooms"]
    assert client.get("/api/budgets/?organisation=mili-tech").json()["count"] == 2
    assert client.get("/api/budgets/?organisation=tongji-lab").json()["count"] == 0


def test_the_detail_lists_every_entry_with_its_event(budgeted):
    w = budgeted
    data = api_client(w.applicant).get(f"/api/budgets/{w.budget.pk}/").json()
    assert (data["epsilon_total"], data["epsilon_spent"], data["epsilon_remaining"]) == ("5.000000", "2.000000", "3.000000")
    assert [(e["kind"], e["epsilon"], e["job"], e["actor"]) for e in data["entries"]] == [
        ("grant", "5.000000", "", "steward"), ("spend", "2.000000", "sandbox.job:3", "applicant"),
    ]
    assert all(isinstance(e["event_seq"], int) for e in data["entries"])


REFUNDS = [
    ("entry-not-a-number", lambda w: {"entry": "x", "epsilon": "1", "reason": "r"}, 400, "entry"),
    ("entry-missing", lambda w: {"epsilon": "1", "reason": "r"}, 400, "entry"),
    ("entry-of-no-budget", lambda w: {"entry": 999999, "epsilon": "1", "reason": "r"}, 400, "entry"),
    ("entry-a-grant", lambda w: {"entry": w.budget.entries.get(kind="grant").pk, "epsilon": "1", "reason": "r"}, 400, "entry"),
    ("epsilon-nan", lambda w: {"entry": w.spent.pk, "epsilon": "NaN", "reason": "r"}, 400, "epsilon"),
    ("epsilon-negative", lambda w: {"entry": w.spent.pk, "epsilon": "-1", "reason": "r"}, 400, "epsilon"),
    ("epsilon-7-places", lambda w: {"entry": w.spent.pk, "epsilon": "0.1234567", "reason": "r"}, 400, "epsilon"),
    ("reason-blank", lambda w: {"entry": w.spent.pk, "epsilon": "1", "reason": ""}, 400, "reason"),
    ("more-than-spent", lambda w: {"entry": w.spent.pk, "epsilon": "2.5", "reason": "r"}, 409, "detail"),
]


@pytest.mark.parametrize("body,status,field", [r[1:] for r in REFUNDS], ids=[r[0] for r in REFUNDS])
def test_a_bad_refund_request_names_the_field_and_writes_nothing(budgeted, body, status, field):
    from provenance.models import LineageEvent

    w = budgeted
    before = LineageEvent.objects.count()
    response = api_client(w.steward).post(f"/api/budgets/{w.budget.pk}/refund/", body(w), format="json")
    assert response.status_code == status, response.content
    assert field in response.json()
    assert LineageEvent.objects.count() == before


def test_dashboards_link_the_budgets_their_users_may_see(budgeted, client):
    w = budgeted
    link = f'href="/budgets/{w.budget.pk}/"'
    for role, sees in [("applicant", True), ("researcher", False), ("steward", True), ("other_steward", False)]:
        client.force_login(getattr(w, role))
        html = client.get("/").content.decode()
        assert 'data-testid="budgets"' in html, role
        # The budgets table (the event list links every subject it names to its own page,
        # which checks who may open it).
        table = html.split('data-testid="budgets"', 1)[1].split("</table>", 1)[0]
        assert (link in table) == sees, role
