"""The job form in Chromium: it shows the chosen kind's fields only (job_form.js, a script file
under the Content-Security-Policy), and the fields of the other kinds are not sent."""
from __future__ import annotations

import pytest

from conftest import log_in

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]


def test_the_job_form_shows_the_fields_of_the_chosen_kind(live_server, live_world, page):
    log_in(page, live_server.url, "researcher")
    page.goto(f"{live_server.url}/jobs/new/")
    form = page.locator("[data-testid=job-form]")
    shown = lambda name: form.locator(f"[data-testid=fields-{name}]").is_visible()
    assert form.locator("[data-testid=kind-centralized]").is_checked()
    assert shown("training") and not shown("federated") and not shown("code") and shown("privacy")
    form.locator("[data-testid=kind-federated]").check()
    assert shown("training") and shown("federated") and not shown("code")
    form.locator("[data-testid=kind-code]").check()
    assert shown("code") and not shown("training") and not shown("federated")
    assert form.locator("textarea[name=code]").is_enabled() and form.locator("input[name=epochs]").is_disabled()
