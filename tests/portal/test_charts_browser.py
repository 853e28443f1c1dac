"""The charts in Chromium: a job's training curves and a budget's ε over time are drawn by
ECharts as SVG with named axes, under the site's CSP, and saved as screenshots."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import log_in
from sandbox_support import add_rooms_corpus, approve_lab
from test_readable import FEDERATED_PRIVACY, HISTORY

pytestmark = [pytest.mark.foundation, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
# Records what the CSP blocks, from before the page's own scripts run.
PROBE = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));"""


def svg_text(page, chart: str) -> str:
    selector = f"[data-chart={chart}] svg"
    page.wait_for_selector(selector)
    return page.eval_on_selector(selector, "svg => Array.from(svg.querySelectorAll('text')).map(t => t.textContent).join('|')")


def test_training_curves_and_the_budget_render_as_charts(live_server, live_world, page):
    from budgets.models import PrivacyBudget
    from jobs import actions
    from jobs.models import Job

    w = live_world
    add_rooms_corpus(w, rooms=300)
    approve_lab(w)
    job = actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="room use",
                             task="room-use", params={"target_epsilon": 3.0, "delta": 1e-5})
    # As a finished federated run leaves it (submitting one needs district nodes online).
    Job.objects.filter(pk=job.pk).update(kind="federated", params={**job.params, "rounds": 3, "secagg": True},
                                         status="review", privacy=FEDERATED_PRIVACY, history=HISTORY,
                                         metrics={"accuracy": 0.7, "rounds": 3}, epsilon_spent="2.91")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.context.add_init_script(PROBE)
    page.set_viewport_size({"width": 1280, "height": 1000})
    log_in(page, live_server.url, "researcher")

    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    loss = svg_text(page, "chart-loss-data")
    assert "联邦轮次" in loss and "训练损失（交叉熵）" in loss  # both axes named, with the unit
    assert page.locator("[data-chart=chart-loss-data] svg path").count() > 3  # axes, grid and the line
    assert "留出集准确率（0–1）" in svg_text(page, "chart-metric-data")
    assert "累计已用 ε" in svg_text(page, "chart-epsilon-data")
    page.locator("[data-testid=job-curve]").screenshot(path=str(SCREENSHOTS / "job-training-curves-zh.png"))

    budget = PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms)
    page.goto(f"{live_server.url}/budgets/{budget.pk}/")
    text = svg_text(page, "chart-budget-data")
    assert "时间" in text and "ε" in text
    page.locator("[data-testid=chart-budget]").screenshot(path=str(SCREENSHOTS / "budget-over-time-zh.png"))
    assert page.evaluate("window.__csp") == []
