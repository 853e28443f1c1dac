"""Sixty jobs spend one budget at the same moment, each on its own PostgreSQL connection:
the row lock lets exactly as many through as fit, and the event log agrees to the digit."""
from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.db import connection

from conftest import build_world

pytestmark = [pytest.mark.access]

THREADS = 60
EACH = Decimal("0.25")
TOTAL = Decimal(10)  # room for 40 of the 60


@pytest.mark.django_db(transaction=True)
def test_parallel_spends_never_overspend_and_match_their_events():
    from budgets import actions
    from budgets.models import BudgetEntry, PrivacyBudget
    from kernel.errors import Conflict
    from provenance.models import LineageEvent
    from provenance.verification import verify_event_log

    if connection.vendor != "postgresql":
        pytest.skip("row locks are what is tested here; make test runs PostgreSQL")
    w = build_world()
    budget = actions.grant_budget(actor=w.steward, organisation=w.startup, dataset=w.rooms, epsilon=TOTAL,
                                  delta="0.00001", source=f"access.application:{w.app_startup.pk}")
    barrier = threading.Barrier(THREADS, timeout=60)
    results: list[object] = [None] * THREADS

    def run(i: int) -> None:
        from django.utils import translation

        translation.activate("en")  # a thread of its own: its refusals in the words quoted below
        try:
            barrier.wait()
            results[i] = actions.spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon=str(EACH),
                                       job=f"sandbox.job:{i}", reason="parallel training run")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    spent = [r for r in results if isinstance(r, BudgetEntry)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(spent) == 40 and len(refused) == 20, [r for r in results if not isinstance(r, (BudgetEntry, Conflict))]
    assert all("remaining ε 0 of 10" in r.message for r in refused)

    budget = PrivacyBudget.objects.get(pk=budget.pk)
    assert budget.epsilon_spent == TOTAL == budget.epsilon_total
    entries = list(budget.entries.filter(kind="spend"))
    assert sum(e.epsilon for e in entries) == budget.epsilon_spent
    assert sorted(e.job for e in entries) == sorted(e.job for e in spent)

    events = list(LineageEvent.objects.filter(event_type="budgets.spent", subject=f"budgets.privacybudget:{budget.pk}"))
    payloads = [json.loads(e.payload) for e in events]
    assert len(events) == len(spent)
    assert sum(Decimal(p["epsilon"]) for p in payloads) == budget.epsilon_spent
    assert {e.seq for e in events} == {e.event_seq for e in entries}
    # Each spend saw the balance the one before it left: the running totals are 0.25, 0.5, … 10.
    assert sorted(Decimal(p["epsilon_spent"]) for p in payloads) == [EACH * k for k in range(1, 41)]
    assert verify_event_log().ok
