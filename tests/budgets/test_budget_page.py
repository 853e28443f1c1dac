"""The budget page: totals, every entry with its job, actor and event, and the plot of
cumulative ε spent against ε_total; stewards refund from it."""
from __future__ import annotations

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

    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert 'data-points="5"' in svg and 'data-spent="2.500000"' in svg and 'data-total="4.000000"' in svg
    spent_path = re.search(r'<path data-series="spent" d="([^"]+)"', svg).group(1)
    assert spent_path.count("V") == 5  # a step for each entry
    assert '<path data-series="total"' in svg
    assert len(re.findall(r"<circle ", svg)) == 4  # the spends and the refund
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
    svg = plot.budget_svg(history, title="a & b", spent_label="spent", total_label="total")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'aria-label="a &amp; b"' in svg and "s2 &lt;job&gt;" in svg
    # Time is the x axis: the entry an hour in sits a quarter of the way along.
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert xs == sorted(xs) and abs((xs[0] - 56) / (720 - 56 - 16) - 0.25) < 0.01
    # Entries written in the same instant are spread out rather than stacked.
    same = plot.steps([(t0, "grant", Decimal(1), "g"), (t0, "spend", Decimal("0.5"), "s"), (t0, "spend", Decimal("0.5"), "t")])
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', plot.budget_svg(same, title="", spent_label="", total_label=""))]
    assert len(set(xs)) == 2
    with pytest.raises(ValueError, match="unknown entry kind"):
        plot.steps([(t0, "gift", Decimal(1), "x")])
