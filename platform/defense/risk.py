"""The risk rules themselves, as plain functions of what happened and the bureau's thresholds.

Each returns the severity to raise (or None), so the rules can be read and tested without a
database; defense.checks feeds them from the models.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

INFO, WARNING, CRITICAL = "info", "warning", "critical"


def download_burst(times: Sequence[datetime], now: datetime, *, window_minutes: int, threshold: int) -> str | None:
    """Downloads of one licence (or one user of an open release) within the window.

    At the threshold it is a warning; at twice the threshold, critical (the licence is
    suspended until a steward looks).
    """
    since = now - timedelta(minutes=window_minutes)
    count = sum(1 for t in times if t >= since)
    if count >= 2 * threshold:
        return CRITICAL
    if count >= threshold:
        return WARNING
    return None


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s\W_]+", " ", text).strip()


def purpose_similarity(a: str, b: str) -> float:
    """How alike two stated purposes are, 0..1, ignoring case, width, spacing and punctuation."""
    return difflib.SequenceMatcher(None, _normal(a), _normal(b)).ratio()


def similar_requests(purpose: str, others: Sequence[tuple[str, str]], *, ratio: float, organisations: int) -> list[str]:
    """The other organisations whose recent requests for the same data read almost the same.

    ``others`` is (organisation code, purpose) of other organisations' recent applications.
    Returns their codes when, with the requester, they make at least ``organisations``
    organisations: several fronts asking for the same slices is how a single party gathers
    more than any one of them would be given.
    """
    alike = sorted({org for org, text in others if purpose_similarity(purpose, text) >= ratio})
    return alike if len(alike) + 1 >= organisations else []


def budget_level(spent: float, total: float, *, warning: float, critical: float) -> str | None:
    if total <= 0:
        return None
    used = spent / total
    if used >= critical:
        return CRITICAL
    if used >= warning:
        return WARNING
    return None


def expiring(valid_until: datetime, now: datetime, *, days: int) -> bool:
    return now <= valid_until <= now + timedelta(days=days)
