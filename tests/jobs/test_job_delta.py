"""δ is checked: a job runs at its privacy budget's δ or below. ε is accounted at the job's δ,
so a job at a larger δ than its budget's would be charged less ε than the budget's δ implies
(ε 0.99 at δ 1e-5 is ε 1.24 at 1e-6); it is refused, naming both, and nothing is charged."""
from __future__ import annotations

import pytest

from conftest import api_client
from sandbox_support import add_rooms_corpus

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

PARAMS = {"epochs": 1, "target_epsilon": 1.0}


@pytest.fixture
def budget_world(world):
    from access import actions as access_actions

    add_rooms_corpus(world, rooms=500)
    access_actions.approve_application(actor=world.steward, application=world.app_lab, epsilon="5", delta="1e-6")
    return world


@pytest.mark.parametrize("kind", ["centralized", "federated"])
def test_a_job_above_its_budgets_delta_is_refused_naming_both_and_charges_nothing(budget_world, kind):
    from budgets.models import BudgetEntry, EntryKind, PrivacyBudget
    from jobs.models import Job
    from provenance.models import LineageEvent

    w = budget_world
    events = LineageEvent.objects.count()
    refused = api_client(w.researcher).post("/api/jobs/", {
        "dataset": "district-rooms", "kind": kind, "title": "room use", "task": "room-use",
        "params": {**PARAMS, "delta": 1e-5}}, format="json")
    assert refused.status_code == 400, refused.content
    message = refused.json()["params.delta"][0]
    assert "1e-05" in message and "0.000001" in message and "tongji-lab" in message and "district-rooms" in message
    assert not Job.objects.exists() and not BudgetEntry.objects.filter(kind=EntryKind.SPEND).exists()
    assert PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms).epsilon_spent == 0
    assert LineageEvent.objects.count() == events


def test_a_job_runs_at_its_budgets_delta_or_below(budget_world):
    from jobs.models import Job

    w = budget_world
    client = api_client(w.researcher)
    for params, delta in ((PARAMS, 1e-6), ({**PARAMS, "delta": 1e-6}, 1e-6), ({**PARAMS, "delta": 1e-7}, 1e-7)):
        created = client.post("/api/jobs/", {"dataset": "district-rooms", "kind": "centralized", "title": "room use",
                                             "task": "room-use", "params": params}, format="json")
        assert created.status_code == 201, created.content
        assert Job.objects.get(pk=created.json()["id"]).delta == delta  # without one, the budget's δ


def test_a_delta_that_is_not_a_number_is_refused_naming_the_field(budget_world):
    """A regression test: a code job's δ went to float() unchecked (a 500)."""
    from jobs import actions

    w = budget_world
    actions.publish_syft_dataset(actor=w.steward, dataset=w.rooms)
    for delta in ("abc", [1], None):
        refused = api_client(w.researcher).post("/api/jobs/", {
            "dataset": "district-rooms", "kind": "code", "title": "t", "code": "print(1)",
            "params": {"delta": delta, "aggregate": {"by": ["district"], "values": {}}}}, format="json")
        assert refused.status_code == 400 and "params.delta" in refused.json(), refused.content


def test_a_jobs_delta_is_checked_as_a_budgets_delta_is(budget_world):
    """One check of δ (budgets.amounts.delta) for budgets and jobs alike: the same words."""
    from django.utils import translation

    from budgets import amounts
    from kernel.errors import InvalidInput

    w = budget_world
    for delta in (1.5, 0, -1e-6, "nan"):
        with pytest.raises(InvalidInput) as budget_says, translation.override("en"):
            amounts.delta(delta, "params.delta")
        refused = api_client(w.researcher).post("/api/jobs/", {
            "dataset": "district-rooms", "kind": "centralized", "title": "room use", "task": "room-use",
            "params": {**PARAMS, "delta": delta}}, format="json", HTTP_ACCEPT_LANGUAGE="en")
        assert refused.status_code == 400, refused.content
        assert refused.json() == budget_says.value.as_data()
