"""The budget page: totals, every entry with its job, actor and event, and the plot of
cumulative ε spent against ε_total; stewards refund from it."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.access]


def _budget(w):
    from budgets import actions

    budget = actions.grant_budget(actor=w.steward, organisation=w.startup, dataset=w.rooms, epsilon="4",
                                  delta="0.00001", source=f"access.application:{w.app_startup.pk}")
    w.spends = [
        actions.spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon=eps, job=f"sandbox.job:{i}",
                      reason=f"训练任务 {i}")
        for i, eps in enumerate(["1", "0.5", "1.25"], start=1)
    ]
    actions.refund(actor=w.steward, entry=w.spends[0], epsilon="0.25", reason="任务提前终止")
    return budget


@pytest.mark.django_db
def test_the_page_shows_totals_entries_and_the_plot(world, client):
    budget = _budget(world)
    client.force_login(world.applicant)
    html = client.get(f"/budgets/{budget.pk}/").content.decode()
    title = re.search(r'data-testid="budget-title">(.*?)</h1>', html, re.S).group(1)
    assert "隐私预算" in title and "mili-tech 名称" in title and "建筑单元" in title
    totals = re.search(r'data-testid="budget-totals">(.*?)</table>', html, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", totals)] == ["4", "2.5", "1.5", "0.00001"]

    rows = re.findall(r'<tr data-kind="(\w+)">(.*?)</tr>', re.search(r'data-testid="budget-entries">(.*)', html, re.S).group(1), re.S)
    assert [kind for kind, _ in rows] == ["grant", "spend", "spend", "spend", "refund"]
    for spend, (_, cells) in zip(world.spends, rows[1:4]):
        assert spend.job in cells and "applicant" in cells and f"<td>{spend.event_seq}</td>" in cells
    assert f"#{world.spends[0].pk}" in rows[4][1] and "任务提前终止" in rows[4][1] and "steward" in rows[4][1]

    # The chart's data (charts.js draws it with ECharts): spent and ε_total, a step per entry.
    chart = json.loads(re.search(r'<script id="chart-budget-data" type="application/json">(.*?)</script>', html,
                                 re.S).group(1))
    spent, total = chart["series"]
    # ... and the last level drawn on to now.
    assert [p[1] for p in spent["data"]] == [0, 1, 1.5, 2.75, 2.5, 2.5] and spent["kind"] == "step"
    assert [p[1] for p in total["data"]] == [4] * 6 and total["dashed"]
    assert chart["x"]["type"] == "time" and chart["y"]["name"] == "ε"
    assert 'data-chart="chart-budget-data"' in html and "vendor/echarts/echarts.min.js" in html
    assert 'name="epsilon"' not in html  # applicants read; only stewards get the refund form


@pytest.mark.django_db
def test_a_steward_refunds_from_the_page(world, client):
    budget = _budget(world)
    client.force_login(world.steward)
    html = client.get(f"/budgets/{budget.pk}/").content.decode()
    assert html.count('name="epsilon"') == 3  # one form per spend
    response = client.post(f"/budgets/{budget.pk}/refund/",
                           {"entry": world.spends[2].pk, "epsilon": "1.25", "reason": "任务失败"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["已退还。"]
    budget.refresh_from_db()
    assert budget.epsilon_spent == Decimal("1.25")
    response = client.post(f"/budgets/{budget.pk}/refund/",
                           {"entry": world.spends[2].pk, "epsilon": "0.1", "reason": "again"}, follow=True)
    assert any("还可退还" in str(m) for m in response.context["messages"])  # in the page's language
    response = client.post(f"/budgets/{budget.pk}/refund/", {"entry": "", "epsilon": "0.1", "reason": "x"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["请选择要退还的消耗记录。"]
    budget.refresh_from_db()
    assert budget.epsilon_spent == Decimal("1.25")


def test_the_plot_steps_through_grants_spends_and_refunds():
    from budgets import plot

    t0 = datetime(2026, 11, 1, 9, 0)
    history = plot.steps([
        (t0, "grant", Decimal("2"), "g"),
        (t0 + timedelta(hours=1), "spend", Decimal("0.5"), "s1"),
        (t0 + timedelta(hours=2), "grant", Decimal("1"), "g2"),
        (t0 + timedelta(hours=3), "spend", Decimal("2"), "s2 <job>"),
        (t0 + timedelta(hours=4), "refund", Decimal("0.5"), "r"),
    ])
    assert [(s.spent, s.total) for s in history] == [
        (0, 2), (Decimal("0.5"), 2), (Decimal("0.5"), 3), (Decimal("2.5"), 3), (2, 3),
    ]
    with pytest.raises(ValueError, match="unknown entry kind"):
        plot.steps([(t0, "gift", Decimal(1), "x")])
