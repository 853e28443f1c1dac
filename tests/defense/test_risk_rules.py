"""The risk rules on their own: thresholds, windows and similarity, without a database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from defense import risk

pytestmark = pytest.mark.access

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def minutes_ago(*ms):
    return [NOW - timedelta(minutes=m) for m in ms]


@pytest.mark.parametrize(
    "times,expected",
    [
        (minutes_ago(1, 2, 3, 4), None),
        (minutes_ago(1, 2, 3, 4, 5), "warning"),
        (minutes_ago(*range(10)), "critical"),
        # Old downloads fall out of the window.
        (minutes_ago(1, 2, 3, 4, 61, 62, 63), None),
    ],
)
def test_download_burst(times, expected):
    assert risk.download_burst(times, NOW, window_minutes=60, threshold=5) == expected


def test_similar_purposes_are_found_across_spelling_noise_and_unrelated_ones_are_not():
    base = "训练房间用途识别模型，用于商业地产选址"
    assert risk.purpose_similarity(base, "训练 房间用途识别模型, 用于商业地产选址!") > 0.9
    assert risk.purpose_similarity("Pipe risk model for our product", "pipe  RISK model for our product.") > 0.95
    assert risk.purpose_similarity(base, "统计街道绿地覆盖率") < 0.4
    others = [("front-a", "训练房间用途识别模型，用于商业地产选址。"), ("lab", "研究城市热岛效应")]
    assert risk.similar_requests(base, others, ratio=0.85, organisations=2) == ["front-a"]
    assert risk.similar_requests(base, others, ratio=0.85, organisations=3) == []


@pytest.mark.parametrize("spent,expected", [(0.5, None), (0.8, "warning"), (0.94, "warning"), (0.95, "critical")])
def test_budget_level(spent, expected):
    assert risk.budget_level(spent, 1.0, warning=0.8, critical=0.95) == expected


def test_expiring():
    assert risk.expiring(NOW + timedelta(days=3), NOW, days=7)
    assert not risk.expiring(NOW + timedelta(days=30), NOW, days=7)
    assert not risk.expiring(NOW - timedelta(days=1), NOW, days=7)  # already over: refused, not warned
