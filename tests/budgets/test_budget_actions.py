"""Granting, spending and refunding privacy budget: balances, entries and lineage events,
refusals that change nothing, and amounts checked field by field."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.access, pytest.mark.django_db]


def _grant(w, epsilon="10", delta="0.00001", organisation=None, dataset=None, actor="steward"):
    from budgets import actions

    return actions.grant_budget(
        actor=getattr(w, actor) if actor else None, organisation=organisation or w.startup,
        dataset=dataset or w.rooms, epsilon=epsilon, delta=delta, source=f"access.application:{w.app_startup.pk}",
    )


def _spend(w, epsilon, job="sandbox.job:7", reason="DP-SGD training run", actor="applicant", organisation=None):
    from budgets import actions

    return actions.spend(
        actor=getattr(w, actor) if actor else None, organisation=organisation or w.startup, dataset=w.rooms,
        epsilon=epsilon, job=job, reason=reason,
    )


def _event(seq):
    from provenance.models import LineageEvent

    event = LineageEvent.objects.get(seq=seq)
    return event, json.loads(event.payload)


def _state(budget):
    """Everything a refused call must leave as it was."""
    from budgets.models import BudgetEntry, PrivacyBudget
    from provenance.models import LineageEvent, LineageLink

    row = PrivacyBudget.objects.filter(pk=budget.pk).values("epsilon_total", "epsilon_spent", "delta").first()
    return row, BudgetEntry.objects.count(), LineageEvent.objects.count(), LineageLink.objects.count()


def test_a_grant_creates_the_budget_with_its_entry_and_lineage_event(world):
    from provenance.models import LineageLink

    budget = _grant(world, epsilon="10", delta="1e-5")
    assert (budget.epsilon_total, budget.epsilon_spent, budget.delta) == (Decimal(10), 0, Decimal("0.00001"))
    (entry,) = budget.entries.all()
    assert (entry.kind, entry.epsilon, entry.actor, entry.reason) == (
        "grant", Decimal(10), world.steward, f"access.application:{world.app_startup.pk}"
    )
    event, payload = _event(entry.event_seq)
    assert (event.event_type, event.subject, event.actor) == (
        "budgets.granted", f"budgets.privacybudget:{budget.pk}", world.steward.actor_label
    )
    assert payload["epsilon"] == "10.000000" and payload["epsilon_total"] == "10.000000"
    assert payload["delta"] == "0.00001" and payload["organisation"] == "mili-tech"
    sources = {f"access.application:{world.app_startup.pk}", f"catalog.dataset:{world.rooms.pk}"}
    assert set(payload["inputs"]) == sources
    assert set(LineageLink.objects.filter(seq=event.seq).values_list("source", flat=True)) == sources
    assert entry.created_at == event.recorded_at


def test_a_second_grant_adds_epsilon_and_keeps_the_stricter_delta(world):
    _grant(world, epsilon="2", delta="0.0001")
    budget = _grant(world, epsilon="0.5", delta="0.000001")
    assert (budget.epsilon_total, budget.delta) == (Decimal("2.5"), Decimal("0.000001"))
    budget = _grant(world, epsilon="1", delta="0.01")  # a looser δ never loosens the budget
    assert (budget.epsilon_total, budget.delta) == (Decimal("3.5"), Decimal("0.000001"))
    assert [e.kind for e in budget.entries.all()] == ["grant"] * 3
    _, payload = _event(budget.entries.last().event_seq)
    assert (payload["delta"], payload["delta_granted"]) == ("0.000001", "0.01")


def test_a_spend_reduces_the_balance_and_names_its_job(world):
    budget = _grant(world, epsilon="10")
    entry = _spend(world, "2.5", job="sandbox.job:7", reason="DP-SGD training run")
    budget.refresh_from_db()
    assert (budget.epsilon_spent, budget.epsilon_remaining) == (Decimal("2.5"), Decimal("7.5"))
    assert (entry.kind, entry.epsilon, entry.job, entry.actor) == ("spend", Decimal("2.5"), "sandbox.job:7", world.applicant)
    event, payload = _event(entry.event_seq)
    assert (event.event_type, event.subject) == ("budgets.spent", f"budgets.privacybudget:{budget.pk}")
    assert payload == {
        "organisation": "mili-tech", "dataset": "district-rooms", "epsilon": "2.500000",
        "epsilon_spent": "2.500000", "epsilon_total": "10.000000", "reason": "DP-SGD training run",
        "inputs": ["sandbox.job:7"],
    }


def test_the_platform_spends_for_a_job_without_a_user(world):
    _grant(world)
    entry = _spend(world, "1", job="", actor=None)
    event, payload = _event(entry.event_seq)
    assert entry.actor is None and event.actor == "system" and "inputs" not in payload


def test_decimal_steps_spend_the_budget_to_exactly_zero(world):
    """Ten spends of 0.1 (a float, even) use up ε = 1 exactly; floats would leave 1e-16 over."""
    from budgets.models import PrivacyBudget
    from kernel.errors import Conflict

    budget = _grant(world, epsilon="1")
    for i in range(10):
        _spend(world, 0.1, job=f"sandbox.job:{i}")
    budget = PrivacyBudget.objects.get(pk=budget.pk)
    assert budget.epsilon_spent == budget.epsilon_total and budget.epsilon_remaining == 0
    with pytest.raises(Conflict):
        _spend(world, "0.000001")


def test_an_overspend_is_refused_and_changes_nothing(world):
    from kernel.errors import Conflict

    budget = _grant(world, epsilon="2")
    _spend(world, "1")
    before = _state(budget)
    with pytest.raises(Conflict) as refused:
        _spend(world, "1.5", job="sandbox.job:9")
    assert "remaining ε 1 of 2" in refused.value.message and "requested ε 1.5 for sandbox.job:9" in refused.value.message
    assert _state(budget) == before


def test_spending_where_no_budget_was_granted_is_refused(world):
    from budgets.models import BudgetEntry
    from kernel.errors import Conflict

    with pytest.raises(Conflict, match="no privacy budget on district-rooms: remaining ε 0, requested ε 0.5"):
        _spend(world, "0.5")
    assert not BudgetEntry.objects.exists()


BAD_EPSILONS = [0, "0", -1, "-0.5", "nan", float("nan"), float("inf"), "-Infinity", "sNaN", "1.0000001",
                "0.0000001", "abc", "", None, True, [1], "1e7", 10**9]


@pytest.mark.parametrize("value", BAD_EPSILONS, ids=repr)
def test_a_bad_epsilon_is_refused_naming_the_field(world, value):
    from kernel.errors import InvalidInput

    budget = _grant(world)
    before = _state(budget)
    with pytest.raises(InvalidInput) as refused:
        _spend(world, value)
    assert refused.value.field == "epsilon"
    with pytest.raises(InvalidInput) as refused:
        _grant(world, epsilon=value)
    assert refused.value.field == "epsilon"
    assert _state(budget) == before


@pytest.mark.parametrize("value", [0, 1, "1.5", "-0.1", "nan", float("inf"), "1e-19", "x", None], ids=repr)
def test_a_bad_delta_is_refused_naming_the_field(world, value):
    from budgets.models import PrivacyBudget
    from kernel.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        _grant(world, delta=value)
    assert refused.value.field == "delta"
    assert not PrivacyBudget.objects.exists()


@pytest.mark.parametrize(
    "field,kwargs",
    [
        ("job", {"job": "job 12"}),
        ("job", {"job": "12"}),
        ("reason", {"reason": "  "}),
        ("reason", {"reason": "x" * 501}),
    ],
)
def test_a_bad_job_or_reason_is_refused(world, field, kwargs):
    from kernel.errors import InvalidInput

    budget = _grant(world)
    before = _state(budget)
    with pytest.raises(InvalidInput) as refused:
        _spend(world, "1", **kwargs)
    assert refused.value.field == field and _state(budget) == before


def test_a_grant_needs_a_source_and_a_dataset_that_is_not_open(world):
    from budgets import actions
    from kernel.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        actions.grant_budget(actor=world.steward, organisation=world.startup, dataset=world.rooms,
                             epsilon="1", delta="0.00001", source="")
    assert refused.value.field == "source"
    with pytest.raises(InvalidInput) as refused:
        _grant(world, dataset=world.roads)
    assert refused.value.field == "dataset"


def test_refunds_give_back_at_most_what_the_spend_took(world):
    from budgets import actions
    from kernel.errors import Conflict

    budget = _grant(world, epsilon="10")
    spent = _spend(world, "3", job="sandbox.job:4")
    first = actions.refund(actor=world.steward, entry=spent, epsilon="1", reason="job failed before its second epoch")
    budget.refresh_from_db()
    assert budget.epsilon_spent == Decimal(2)
    assert (first.kind, first.refund_of, first.job, first.actor) == ("refund", spent, "sandbox.job:4", world.steward)
    event, payload = _event(first.event_seq)
    assert event.event_type == "budgets.refunded" and event.subject == f"budgets.privacybudget:{budget.pk}"
    assert payload["epsilon"] == "1.000000" and payload["epsilon_spent"] == "2.000000"
    assert payload["refund_of_seq"] == spent.event_seq and payload["inputs"] == ["sandbox.job:4"]

    before = _state(budget)
    with pytest.raises(Conflict, match="has ε 2 left to refund of ε 3; requested ε 2.5"):
        actions.refund(actor=world.steward, entry=spent, epsilon="2.5", reason="too much")
    assert _state(budget) == before
    actions.refund(actor=None, entry=spent, epsilon="2", reason="job cancelled")  # the platform, for the job
    with pytest.raises(Conflict, match="has ε 0 left to refund"):
        actions.refund(actor=world.steward, entry=spent, epsilon="0.000001", reason="once more")
    budget.refresh_from_db()
    assert budget.epsilon_spent == 0 and budget.epsilon_total == 10


def test_only_a_spend_can_be_refunded(world):
    from budgets import actions
    from kernel.errors import InvalidInput

    budget = _grant(world)
    spent = _spend(world, "1")
    refund = actions.refund(actor=world.steward, entry=spent, epsilon="0.5", reason="partial failure")
    for entry in (budget.entries.get(kind="grant"), refund):
        with pytest.raises(InvalidInput) as refused:
            actions.refund(actor=world.steward, entry=entry, epsilon="0.1", reason="no")
        assert refused.value.field == "entry"


@pytest.mark.parametrize(
    "who,reason",
    [
        ("other_steward", "only stewards of sh-planning"),
        ("applicant", "needs the role"),
        ("auditor", "needs the role"),
        ("admin", "needs the role"),
    ],
)
def test_only_stewards_of_the_owning_bureau_refund(world, who, reason):
    from budgets import actions
    from kernel.errors import Refused

    budget = _grant(world)
    spent = _spend(world, "1")
    before = _state(budget)
    with pytest.raises(Refused, match=reason):
        actions.refund(actor=getattr(world, who), entry=spent, epsilon="1", reason="please")
    assert _state(budget) == before


def test_separation_of_duties_holds_for_grants_and_refunds(world):
    """A steward neither grants to nor refunds their own organisation's budget."""
    from budgets import actions
    from kernel.errors import Refused

    with pytest.raises(Refused, match="separation of duties"):
        _grant(world, organisation=world.bureau)
    budget = _grant(world, organisation=world.bureau, actor=None)
    spent = actions.spend(actor=world.bureau_applicant, organisation=world.bureau, dataset=world.rooms,
                          epsilon="1", job="sandbox.job:1", reason="internal study")
    before = _state(budget)
    with pytest.raises(Refused, match="separation of duties"):
        actions.refund(actor=world.steward, entry=spent, epsilon="1", reason="mine")
    assert _state(budget) == before


@pytest.mark.parametrize(
    "who,organisation,reason",
    [
        ("researcher", "startup", "its own organisation's budget"),
        ("steward", "startup", "needs the role"),
        ("auditor", "startup", "needs the role"),
    ],
)
def test_a_job_spends_only_its_own_organisations_budget(world, who, organisation, reason):
    from kernel.errors import Refused

    budget = _grant(world)
    before = _state(budget)
    with pytest.raises(Refused, match=reason):
        _spend(world, "1", actor=who, organisation=getattr(world, organisation))
    assert _state(budget) == before


def test_grants_come_from_stewards_of_the_owning_bureau(world):
    from budgets.models import PrivacyBudget
    from kernel.errors import Refused

    for who, reason in [("other_steward", "only stewards of sh-planning"), ("applicant", "needs the role")]:
        with pytest.raises(Refused, match=reason):
            _grant(world, actor=who)
    assert not PrivacyBudget.objects.exists()


def test_the_database_refuses_an_overspent_row_written_behind_the_actions(world):
    from django.db import IntegrityError, transaction

    from budgets.models import PrivacyBudget

    budget = _grant(world, epsilon="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PrivacyBudget.objects.filter(pk=budget.pk).update(epsilon_spent=Decimal("1.000001"))
