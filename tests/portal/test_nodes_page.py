"""The district nodes page, as its users use it, against the session's standing SuperLink: a
steward sees every node with its state, registers a node's public key through the form (a
key that is not one shows the error beside the field and changes nothing) and revokes a
node through the confirmation step, each with its lineage event; an auditor reads the page;
a researcher is refused; a district's data holder sees its own node and the partition on it
on the dashboard. In Chromium, the page is saved as a screenshot
(build/screenshots/<lang>/steward-nodes.png) and checked with axe-core."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import log_in, wait_for
from federation_support import district_rooms, node_tool
from test_tour_browser import AXE_RUN

pytestmark = [pytest.mark.sandbox]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def rows(html: str) -> dict[str, dict]:
    """The nodes table as the page shows it: node name -> state, last contact, device, datasets."""
    found = {}
    for name, row in re.findall(r'<tr data-node="([^"]+)">(.*?)</tr>', html, re.S):
        cell = dict(re.findall(r'data-testid="(last-contact|device)">(.*?)</td>', row, re.S))
        found[name] = {"state": re.search(r'data-state="(\w+)"', row).group(1),
                       "last_contact": re.sub(r"<[^>]+>", "", cell["last-contact"]).strip(),
                       "device": re.sub(r"<[^>]+>", "", cell["device"]).strip(),
                       "datasets": re.findall(r'data-dataset="([^"]+)"', row),
                       "revoke": 'action="/nodes/' + name + '/revoke/"' in row}
    return found


def nodes_page(client) -> dict[str, dict]:
    answer = client.get("/nodes/")
    assert answer.status_code == 200, answer.status_code
    return rows(answer.content.decode())


@pytest.mark.django_db
def test_a_steward_registers_and_revokes_a_node_on_the_page(world, standing_federation, client, tmp_path):
    from federation.models import DistrictNode, NodeStatus
    from provenance.models import LineageEvent

    w = district_rooms(world, standing_federation)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(w.steward)
    html = client.get("/").content.decode()
    assert 'data-testid="nav-nodes"' in html  # the page is in the steward's navigation
    wait_for(lambda: {r["state"] for r in nodes_page(client).values()} == {"online"}, timeout=120, interval=1,
             what="the three district nodes online on the page")
    shown = nodes_page(client)
    assert set(shown) == {"pudong-node", "huangpu-node", "jingan-node"}
    assert all(r["last_contact"] and r["device"] == "CPU" and r["datasets"] == ["district-rooms"] and r["revoke"]
               for r in shown.values())

    # A key that is not one: the form again, the error beside the key, nothing registered.
    events = LineageEvent.objects.count()
    form = {"organisation": w.district.code, "name": "page-node", "public_key": "ssh-rsa AAAA"}
    bad = client.post("/nodes/", form)
    assert bad.status_code == 400
    page = bad.content.decode()
    assert re.search(r'data-field="public_key"[^>]*>not an OpenSSH public key', page)
    assert 'value="page-node"' in page  # as it was typed
    assert not DistrictNode.objects.filter(name="page-node").exists() and LineageEvent.objects.count() == events

    key = node_tool("init", "--home", str(tmp_path / "page-node"), "--name", "page-node").stdout.strip()
    done = client.post("/nodes/", {**form, "public_key": key}, follow=True)
    assert done.redirect_chain == [("/nodes/", 302)]
    assert "Node page-node is registered with the SuperLink" in done.content.decode()
    added = rows(done.content.decode())["page-node"]
    assert added["state"] == "registered" and added["last_contact"] == "never" and added["datasets"] == []
    node = DistrictNode.objects.get(name="page-node")
    registered = LineageEvent.objects.get(subject=f"federation.districtnode:{node.pk}")
    assert registered.event_type == "federation.node_registered" and json.loads(registered.payload)["organisation"] == "pudong"

    # Revoking asks first; confirmed, the node is revoked at the SuperLink and on the page.
    asked = client.post(f"/nodes/{node.name}/revoke/", {"reason": "decommissioned"}, HTTP_REFERER="/nodes/")
    assert asked.status_code == 200 and 'data-testid="confirm-page"' in asked.content.decode()
    assert "decommissioned" in asked.content.decode()
    node.refresh_from_db()
    assert node.status == NodeStatus.REGISTERED
    done = client.post(f"/nodes/{node.name}/revoke/", {"reason": "decommissioned", "confirmed": "yes"}, follow=True)
    assert done.redirect_chain == [("/nodes/", 302)] and "Node page-node was revoked" in done.content.decode()
    after = rows(done.content.decode())
    assert after["page-node"]["state"] == "revoked" and not after["page-node"]["revoke"]
    revoked = LineageEvent.objects.filter(subject=f"federation.districtnode:{node.pk}").order_by("seq").last()
    assert revoked.event_type == "federation.node_revoked" and json.loads(revoked.payload)["reason"] == "decommissioned"
    assert node.flower_node_id not in {n["node-id"] for n in standing_federation.client.supernodes()
                                       if n.get("status") != "unregistered"}
    # Revoking it again is refused with the reason, and changes nothing.
    events = LineageEvent.objects.count()
    again = client.post(f"/nodes/{node.name}/revoke/", {"confirmed": "yes"}, follow=True)
    assert "node page-node is already revoked" in again.content.decode()
    assert LineageEvent.objects.count() == events


@pytest.mark.django_db
def test_who_sees_the_nodes_the_holder_its_own_on_the_dashboard(world, standing_federation, client):
    w = district_rooms(world, standing_federation)
    client.force_login(w.researcher)
    assert client.get("/nodes/").status_code == 403

    client.force_login(w.auditor)  # reads every node, registers none
    answer = client.get("/nodes/")
    assert set(rows(answer.content.decode())) == {"pudong-node", "huangpu-node", "jingan-node"}
    assert 'data-testid="register-node"' not in answer.content.decode()
    assert not any(r["revoke"] for r in rows(answer.content.decode()).values())

    client.force_login(w.data_holder)  # pudong's: its own node, and what it published
    dashboard = client.get("/").content.decode()
    mine = rows(dashboard)
    assert set(mine) == {"pudong-node"}
    assert mine["pudong-node"]["datasets"] == ["district-rooms"] and mine["pudong-node"]["device"] == "CPU"
    units = w.nodes["pudong-node"].partitions.get().units
    assert f"{units} 个单元" in dashboard and 'data-testid="count-nodes">1<' in dashboard
    assert client.post("/nodes/", {"organisation": "pudong", "name": "x-node", "public_key": "k"}).status_code == 403
    assert client.post("/nodes/pudong-node/revoke/", {"confirmed": "yes"}).status_code == 403


@pytest.mark.browser
def test_the_nodes_page_in_chromium(live_server, live_world, standing_federation, browser):
    district_rooms(live_world, standing_federation)
    for locale, lang in (("zh-CN", "zh"), ("en-US", "en")):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            log_in(page, live_server.url, "steward")
            page.click("[data-testid=nav-nodes]")  # in the steward's navigation
            page.wait_for_selector("[data-testid=nodes] tr[data-node=pudong-node]")
            assert page.locator("[data-testid=nodes] [data-state]").count() == 3
            assert page.locator("[data-testid=register-node] textarea[name=public_key]").is_visible()
            (SCREENSHOTS / lang).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / lang / "steward-nodes.png"), full_page=True)
            if lang == "zh":  # the same template in both languages
                page.add_script_tag(url=f"{live_server.url}/static/vendor/axe-core/axe.min.js")
                assert page.evaluate(AXE_RUN) == []
        finally:
            context.close()
