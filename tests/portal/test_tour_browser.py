"""Each role's main flow in Chromium, in Chinese and in English, as a new user would take it:
the steward approves an application, generates a corpus version and builds a release,
watching both bars finish and the pages move on to the result by themselves, then publishes
it; the applicant applies for data and downloads the open release; the auditor verifies the
release's lineage; the data holder and the administrator open their dashboards.

Every page visited is saved as a screenshot, build/screenshots/<lang>/<role>-<page>.png, and
axe-core (npm, served by the site itself, so no Content-Security-Policy is loosened) checks
the main pages for serious or critical accessibility violations (in the Chinese walk: the
English pages are built from the same templates; both walks check the page's lang)."""
from __future__ import annotations

import re

import pytest
import requests

from conftest import PASSWORD, REPO

pytestmark = [pytest.mark.foundation, pytest.mark.browser]

SHOTS = REPO / "build" / "screenshots"
LANGS = {  # the browser's language, and what the page says it is in
    "zh": ("zh-CN", "zh-hans"),
    "en": ("en-US", "en"),
}
TITLES = {
    "zh": {"steward": "数据管理员工作台", "applicant": "申请方工作台", "auditor": "审计员工作台",
           "holder": "数据持有方工作台", "admin": "平台管理员工作台"},
    "en": {"steward": "Steward dashboard", "applicant": "Applicant dashboard", "auditor": "Auditor dashboard",
           "holder": "Data holder dashboard", "admin": "Administrator dashboard"},
}
AXE_RUN = """async () => {
  const report = await axe.run(document, { resultTypes: ["violations"] });
  return report.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + " (" + v.impact + "): " + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
}"""


class Tour:
    """One language's browser context: opens pages as a role, saves each as a screenshot and
    collects what axe-core finds."""

    def __init__(self, browser, base_url: str, lang: str):
        self.browser, self.base_url, self.lang = browser, base_url, lang
        self.folder = SHOTS / lang
        self.folder.mkdir(parents=True, exist_ok=True)
        self.violations: dict[str, list[str]] = {}
        self.pages = []

    def open(self, role: str):
        context = self.browser.new_context(locale=LANGS[self.lang][0], viewport={"width": 1280, "height": 900},
                                           accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: dialog.accept())  # an irreversible action asks first
        page.role = role
        self.pages.append(page)
        return page

    def log_in(self, page, username: str):
        page.goto(f"{self.base_url}/accounts/login/")
        if page.role == "steward":  # the same page for everyone
            self.shot(page, "login")
            assert page.request.get(f"{self.base_url}/favicon.ico").status == 200
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_selector("[data-testid=dashboard-title]")
        assert page.inner_text("[data-testid=dashboard-title]") == TITLES[self.lang][page.role]
        self.shot(page, "dashboard")

    def shot(self, page, name: str, *, check: bool = True):
        """Save the page as the reader sees it (whole length); check it with axe-core."""
        assert page.get_attribute("html", "lang") == LANGS[self.lang][1], page.url
        page.screenshot(path=str(self.folder / f"{page.role}-{name}.png"), full_page=True)
        if check and self.lang == "zh":  # the pages' structure is the same in both languages
            page.add_script_tag(url=f"{self.base_url}/static/vendor/axe-core/axe.min.js")
            found = page.evaluate(AXE_RUN)
            if found:
                self.violations[f"{page.role}-{name}"] = found

    def close(self):
        for page in self.pages:
            page.context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_role_walks_its_main_flow(live_server, live_world, celery_worker, browser, lang):
    from jobs import actions as job_actions
    from sandbox_support import add_rooms_corpus, approve_lab

    w = live_world
    # A lab's job on the compute-only rooms, waiting for the steward's approval.
    add_rooms_corpus(w, rooms=400, seed=5)
    approve_lab(w)
    job = job_actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="room use",
                                 task="room-use", params={"epochs": 1, "target_epsilon": 2.0})
    # The first request imports every view (numpy, torch, ...): made once, before the browser comes.
    assert requests.get(f"{live_server.url}/accounts/login/", timeout=180).status_code == 200
    tour = Tour(browser, live_server.url, lang)
    try:
        # The steward: a queue with counts, buttons on one line, an approval.
        steward = tour.open("steward")
        tour.log_in(steward, "steward")
        counts = {el.get_attribute("data-testid"): el.inner_text()
                  for el in steward.locator("[data-testid=sections] .count").element_handles()}
        assert counts["count-queue"] == "2" and counts["count-review-jobs"] == "1", counts
        row = steward.locator("[data-testid=review-queue] tr", has_text="pipe risk model")
        approve = row.locator("button[value=approve]")
        box = approve.bounding_box()
        assert box["width"] > box["height"] and box["height"] < 48, box  # 批准 on one line, not 批/准
        row.locator("input[name=reason]").fill("purpose is clear")
        approve.click()
        steward.wait_for_selector("[role=alert]")
        assert steward.locator("[data-testid=count-queue]").inner_text() == "1"
        steward.click(f"[data-testid=review-jobs] a[href='/jobs/{job.pk}/']")
        steward.wait_for_selector("#job")
        tour.shot(steward, "job")

        # A corpus version: the task page's bar, then the dataset page by itself.
        steward.goto(f"{live_server.url}/datasets/{w.roads.slug}/")
        tour.shot(steward, "dataset")
        steward.fill("[data-testid=generate-form] input[name=seed]", "3")
        steward.fill("[data-testid=generate-form] input[name=rooms]", "400")
        steward.click("[data-testid=generate-form] button")
        steward.wait_for_url(re.compile(r"/tasks/[0-9a-f-]+/\?follow=1$"))
        tour.shot(steward, "ingest-task", check=False)
        steward.wait_for_url(f"{live_server.url}/datasets/{w.roads.slug}/", timeout=90_000)
        assert "v1" in steward.inner_text("[data-testid=versions]")
        # The roads' open-data policy (the form's own defaults are for rooms: tested in tests/releases).
        from releases import actions as release_actions
        from releases.pipeline import ReleaseSpec

        release_actions.save_policy(actor=w.steward, dataset=w.roads, spec=ReleaseSpec(data_class="open").to_dict())

        # The release: its page shows the build's bar and then, by itself, the report.
        steward.click("[data-testid=start-release]")
        steward.wait_for_url(re.compile(r"/releases/\d+/$"))
        release = int(re.search(r"/releases/(\d+)/$", steward.url).group(1))
        if steward.locator("[data-testid=live-progress]").count():  # still building when the page came
            tour.shot(steward, "release-building", check=False)
        # No reload from here: the page reloads itself when the build ends.
        status = steward.wait_for_selector("[data-testid=release-status]:not(.building)", timeout=90_000)
        assert "built" in status.get_attribute("class"), steward.inner_text("main")
        tour.shot(steward, "release")
        steward.click("[data-testid=publish]")
        steward.wait_for_selector("[data-testid=confirm]")  # publishing is irreversible: asked first
        tour.shot(steward, "release-publish-confirm", check=False)
        steward.click("[data-testid=confirm]")
        steward.wait_for_selector("[data-testid=release-status].published")
        tour.shot(steward, "release-published", check=False)

        # The applicant applies for compute-only data and downloads the open release.
        applicant = tour.open("applicant")
        tour.log_in(applicant, "applicant")
        form = applicant.locator("[data-testid=apply-form]")
        form.locator("select[name=dataset]").select_option(w.rooms.slug)
        form.locator("textarea[name=purpose]").fill("room-use model for a planning product")
        form.locator("button[type=submit]").click()
        applicant.wait_for_selector("[role=alert]")
        assert applicant.locator("[role=alert].success").count() == 1
        tour.shot(applicant, "applied", check=False)
        with applicant.expect_download() as download:
            applicant.locator("[data-testid=open-releases] tr", has_text=f"#{release}").locator("button").click()
        assert download.value.suggested_filename and download.value.path().stat().st_size > 0
        applicant.goto(f"{live_server.url}/innovation/")
        tour.shot(applicant, "innovation")

        # The auditor verifies the release's lineage.
        auditor = tour.open("auditor")
        tour.log_in(auditor, "auditor")
        auditor.goto(f"{live_server.url}/events/")
        tour.shot(auditor, "events")
        auditor.goto(f"{live_server.url}/lineage/?subject=releases.release:{release}")
        tour.shot(auditor, "lineage")
        auditor.click("[data-testid=verify-lineage]")
        assert "succeeded" in auditor.get_attribute("[data-testid=lineage-verdict]", "class")
        tour.shot(auditor, "lineage-verified", check=False)

        # The data holder and the administrator see their dashboards.
        tour.log_in(tour.open("holder"), "holder")
        tour.log_in(tour.open("admin"), "admin")
    finally:
        tour.close()
    assert tour.violations == {}, "\n".join(f"{page}: {found}" for page, found in tour.violations.items())
