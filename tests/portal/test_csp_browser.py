"""The Content-Security-Policy in a browser: the main pages load in Chromium and not one of
them makes it block a script, a style or anything else (no `securitypolicyviolation`)."""
from __future__ import annotations

import pytest
import requests

from conftest import log_in
from provenance.recorder import subject_of

pytestmark = [pytest.mark.foundation, pytest.mark.browser]

# Records every violation the page reports, from before the page's own scripts run.
PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""
PAGES = [
    "/",  # the steward's dashboard
    "/accounts/login/",
    "/datasets/huangpu-roads/",
    "/catalog/?q=道路",
    "/jobs/new/",  # shows the chosen kind's fields from a script file (job_form.js)
    "/events/",
    "/lineage/?subject={roads}",
    "/jobs/",
    "/innovation/",
    "/account/",
    "/api/docs/",
    "/tasks/{task}/",  # polls the API from a script file (progress.js)
    "/no-such-page/",
]


def test_the_main_pages_satisfy_the_content_security_policy(live_server, live_world, page):
    from progress.actions import queue_task

    # A queued task, never dispatched: its page shows it waiting and polls for progress.
    task = queue_task("events.verify", label="CSP", actor=live_world.steward, dispatch=lambda task_id: None)
    page.context.add_init_script(PROBE)
    refused = []
    page.on("console", lambda m: refused.append(f"{page.url}: {m.text}") if "Content Security Policy" in m.text else None)
    # The first request imports every view (numpy, torch, ...); on a busy machine that can take
    # longer than a page load may, so it is made once before the browser comes.
    assert requests.get(f"{live_server.url}/accounts/login/", timeout=180).status_code == 200
    log_in(page, live_server.url, "steward")  # the login page, then the dashboard
    violations = {}
    for path in PAGES:
        path = path.format(roads=subject_of(live_world.roads), task=task.pk)
        response = page.goto(live_server.url + path)
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        if path == "/api/docs/":  # Swagger UI builds its page from the schema after the load
            page.wait_for_selector(".swagger-ui .information-container")
            page.wait_for_load_state("networkidle")
        violations[path] = page.evaluate("window.__csp")
    assert {p: v for p, v in violations.items() if v} == {} and refused == []

    # The probe sees what the policy blocks: an inline script added now is refused and reported.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }")
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.ran") is None and "script-src" in page.evaluate("window.__csp")[0]
