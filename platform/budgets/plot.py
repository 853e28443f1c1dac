"""A budget's history as steps: cumulative ε spent over time against ε_total (which grants
raise), for the budget page's chart (portal.charts.budget_over_time). No Django here.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Step:
    """The budget just after one entry."""

    at: datetime
    kind: str  # grant | spend | refund
    spent: Decimal  # cumulative ε spent
    total: Decimal  # ε_total
    label: str  # what the entry was, for its tooltip


def steps(entries: Iterable[tuple[datetime, str, Decimal, str]]) -> list[Step]:
    """Cumulative totals from (at, kind, ε, label) entries in the order they were written."""
    spent = total = Decimal(0)
    out = []
    for at, kind, epsilon, label in entries:
        if kind == "grant":
            total += epsilon
        elif kind == "spend":
            spent += epsilon
        elif kind == "refund":
            spent -= epsilon
        else:
            raise ValueError(f"unknown entry kind {kind!r}")
        out.append(Step(at, kind, spent, total, label))
    return out
