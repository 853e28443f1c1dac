"""The conditional class in the browser: a researcher applies, the steward approves, and the
researcher downloads their own fingerprinted package from the dashboard."""

from __future__ import annotations

import json

import pytest
import shapely

from access_support import PIPE_POLICY, publish_release, release_base
from conftest import log_in

pytestmark = [pytest.mark.access, pytest.mark.browser]


def test_apply_approve_download_in_the_browser(live_server, live_world, browser, page):
    from access.models import Licence

    w = live_world
    release = publish_release(w, w.pipes, pipes=120, desensitize=PIPE_POLICY())

    log_in(page, live_server.url, "researcher")
    form = page.locator("[data-testid=apply-form]")
    form.locator("select[name=dataset]").select_option("pudong-pipes")
    form.locator("select[name=purpose_category]").select_option("research")
    form.locator("textarea[name=purpose]").fill("pipe ageing study for a journal article")
    form.locator("input[name=duration_days]").fill("30")
    form.locator("button[type=submit]").click()
    assert "已提交" in page.inner_text("[role=alert]")

    steward = browser.new_context(locale="zh-CN").new_page()
    log_in(steward, live_server.url, "steward")
    row = steward.locator("[data-testid=review-queue] tr", has_text="pipe ageing study")
    row.locator("input[name=reason]").fill("purpose is clear")
    row.locator("input[name=download_limit]").fill("3")
    row.locator("button[value=approve]").click()
    assert "已处理" in steward.inner_text("[role=alert]")
    licence = Licence.objects.get(organisation=w.lab)
    assert licence.release_id == release.pk and licence.download_limit == 3
    assert str(licence.pk) in steward.inner_text("[data-testid=licences]")  # the steward's licence list
    steward.context.close()

    page.reload()
    row = page.locator(f"[data-testid=licences] tr[data-licence='{licence.pk}']")
    assert "0 / 3" in row.inner_text()
    with page.expect_download() as download:
        row.locator("[data-testid=download]").click()
    package = json.loads(open(download.value.path(), "rb").read())
    assert download.value.suggested_filename == f"pudong-pipes-r{release.pk}-licence{licence.pk}.geojson"

    base, keys = release_base(release)
    by_id = dict(zip(keys, base))
    geoms = [shapely.from_geojson(json.dumps(f["geometry"])) for f in package["features"]]
    ids = [f["properties"]["unit_id"] for f in package["features"]]
    assert len(geoms) == len(base)
    assert not any(shapely.equals_exact(g, by_id[i], tolerance=0) for g, i in zip(geoms, ids)), (
        "fingerprinted"
    )
    licence.refresh_from_db()
    assert licence.downloads_used == 1
    page.reload()
    assert "1 / 3" in page.locator(f"[data-testid=licences] tr[data-licence='{licence.pk}']").inner_text()
