"""The portal's maps in Chromium: a release page draws its Leaflet map over the offline
basemap, with zoom, a metric scale and a legend; a click on a feature opens its popup; no
request leaves the portal's host when no basemap URL is configured; the CSP blocks nothing.
A screenshot is saved under build/screenshots/."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from conftest import add_release, log_in

pytestmark = [pytest.mark.foundation, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def test_a_release_map_draws_opens_a_popup_and_stays_on_this_host(live_server, live_world, page):
    """Chromium opens an open release's page: the map draws the release over the offline
    basemap, with zoom, a metric scale and a legend; clicking a feature opens its popup; no
    request leaves the portal's host, and the CSP blocks nothing."""
    from releases import actions as release_actions

    w = add_release(live_world, rooms=400)
    release_actions.publish_release(actor=w.steward, release=w.release)
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    page.context.add_init_script(
        'document.addEventListener("securitypolicyviolation", (e) => window.__csp = (window.__csp || [])'
        '.concat([e.violatedDirective + " " + e.blockedURI]));')
    # The first request imports every view; on a busy machine that takes longer than a page load may.
    assert requests.get(f"{live_server.url}/accounts/login/", timeout=180).status_code == 200
    log_in(page, live_server.url, "researcher")
    page.goto(f"{live_server.url}/releases/{w.release.pk}/")
    page.wait_for_selector("[data-testid=map][data-map-state=ready]")
    assert page.locator("[data-testid=map] path.leaflet-interactive").count() > 10
    assert page.locator("[data-testid=map] .leaflet-control-zoom-in").count() == 1
    assert page.inner_text("[data-testid=map] .leaflet-control-scale-line").strip().endswith("m")
    legend = page.inner_text("[data-testid=map] .map-legend")
    assert "图例" in legend and "底图" in legend

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("[data-testid=map]").screenshot(path=str(SCREENSHOTS / "release-map.png"))

    # A feature whose centre is its own (not under another or a control): click it there.
    point = page.evaluate("""() => {
      for (const path of document.querySelectorAll('[data-testid=map] path.leaflet-interactive')) {
        const box = path.getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        if (document.elementFromPoint(x, y) === path) return [x, y];
      }
      return null;
    }""")
    assert point is not None
    page.mouse.click(*point)
    popup = page.wait_for_selector(".leaflet-popup-content .map-popup")
    assert "kind" in popup.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "release-map-popup.png"), full_page=True)

    portal = urlsplit(live_server.url).netloc
    elsewhere = [u for u in asked if not u.startswith("data:") and urlsplit(u).netloc != portal]
    assert elsewhere == [] and any(u.endswith("/map.geojson") for u in asked)
    assert any(u.endswith("/map/basemap.geojson") for u in asked)
    assert page.evaluate("window.__csp || []") == []
