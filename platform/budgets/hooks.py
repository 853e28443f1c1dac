"""What the budgets app tells the rest of the platform.

``budget_spent`` is sent after a spend commits, with ``budget`` (the PrivacyBudget as the
spend left it). Receivers run outside any transaction (active defense raises an alert when
a budget passes its bureau's threshold); one that fails is logged and undoes nothing.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

budget_spent = Signal()


def announce_spend(budget) -> None:
    def send() -> None:
        for receiver, result in budget_spent.send_robust(sender=type(budget), budget=budget):
            if isinstance(result, Exception):
                log.error("budget_spent receiver %r failed for budget #%s", receiver, budget.pk, exc_info=result)

    transaction.on_commit(send)
