"""The dashboards' access buttons: ask for changes and resubmit, suspend and revoke, download
through a fresh link, and trace a leak; each reports its outcome on the page."""

from __future__ import annotations

import pytest

from access_support import content, features, leak_file, licensed_world, release_base

pytestmark = [pytest.mark.access, pytest.mark.django_db]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_steward_asks_for_changes_and_applicant_resubmits_from_the_dashboard(world, client):
    w = world
    client.force_login(w.steward)
    page = client.get("/").content.decode()
    assert 'value="changes"' in page
    client.post(f"/applications/{w.app_lab.pk}/decide/", {"decision": "changes", "reason": "one district only"})
    w.app_lab.refresh_from_db()
    assert w.app_lab.status == "changes_requested"

    client.force_login(w.researcher)
    page = client.get("/").content.decode()
    assert "one district only" in page and 'data-testid="resubmit-form"' in page
    response = client.post(
        f"/applications/{w.app_lab.pk}/resubmit/",
        {"purpose": "room-use classification in Pudong only", "purpose_category": "research", "duration_days": "60"},
        follow=True,
    )
    assert any("重新提交" in m for m in messages_of(response))
    w.app_lab.refresh_from_db()
    assert (w.app_lab.status, w.app_lab.purpose_category, w.app_lab.duration_days) == ("submitted", "research", 60)


def test_applicant_downloads_from_the_dashboard_and_steward_revokes(world, client):
    w = licensed_world(world)
    client.force_login(w.applicant)
    assert f'data-licence="{w.licence.pk}"' in client.get("/").content.decode()
    followed = client.post(f"/licences/{w.licence.pk}/download/", {"format": "geojson"})
    assert followed.status_code == 302 and followed["Location"].startswith("/api/downloads/")
    package = client.get(followed["Location"])
    assert package.status_code == 200 and len(features(content(package))[0]) == len(release_base(w.pipes_release)[0])

    client.force_login(w.steward)
    asked = client.post(f"/licences/{w.licence.pk}/change/", {"do": "revoke", "reason": "terms breached"})
    assert 'data-testid="confirm-page"' in asked.content.decode()  # revoking cannot be undone: confirm first
    w.licence.refresh_from_db()
    assert w.licence.status == "active"
    response = client.post(
        f"/licences/{w.licence.pk}/change/", {"do": "revoke", "reason": "terms breached", "confirmed": "yes"},
        follow=True,
    )
    assert any("已更新" in m for m in messages_of(response))
    w.licence.refresh_from_db()
    assert w.licence.status == "revoked"

    client.force_login(w.applicant)
    refused = client.post(f"/licences/{w.licence.pk}/download/", {"format": "geojson"}, follow=True)
    assert any("已撤销" in m and "terms breached" in m for m in messages_of(refused)), messages_of(refused)


def test_auditor_traces_a_leak_from_the_dashboard(world, client):
    w = licensed_world(world)
    client.force_login(w.applicant)
    package = content(client.get(client.post(f"/licences/{w.licence.pk}/download/", {})["Location"]))
    geoms, _ = features(package)

    client.force_login(w.auditor)
    assert 'data-testid="leak-form"' in client.get("/").content.decode()
    response = client.post("/leaks/", {"file": leak_file(geoms[:50])}, follow=True)
    assert any(f"许可 #{w.licence.pk}" in m for m in messages_of(response))
    assert "mili-tech" in response.content.decode()

    client.force_login(w.applicant)
    refused = client.post("/leaks/", {"file": leak_file(geoms[:50])}, follow=True)
    assert any("需要以下角色" in m for m in messages_of(refused)), messages_of(refused)
