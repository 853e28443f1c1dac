"""Active defense end to end: each risk signal raises an alert with its severity, shown to the
owning bureau's stewards and emailed to them; a critical alert suspends the licence at once,
and a steward reinstates it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import translation

from access_support import leak_file, licensed_world, link
from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


@pytest.fixture
def defended(world, django_capture_on_commit_callbacks):
    """The licensed world, with stewards that have email and low burst thresholds."""
    from defense.models import DefensePolicy

    for steward in (world.steward, world.other_steward):
        steward.email = f"{steward.username}@planning.example.gov.cn"
        steward.save(update_fields=["email"])
    DefensePolicy.objects.create(bureau=world.bureau, burst_downloads=2, burst_window_minutes=60)
    licensed_world(world)
    world.run = lambda: django_capture_on_commit_callbacks(execute=True)
    return world


def alerts(**filters):
    from defense.models import Alert

    return list(Alert.objects.filter(**filters).order_by("pk"))


def download(w, user=None):
    made = link(user or w.applicant, w.licence)
    with w.run():
        return api_client(user or w.applicant).get(made["url"])


def test_a_download_burst_warns_then_suspends_the_licence_and_emails_the_stewards(defended):
    w = defended
    for _ in range(2):
        assert download(w).status_code == 200
    (warning,) = alerts(kind="download_burst")
    assert warning.severity == "warning" and warning.licence == w.licence and not warning.licence_suspended
    assert mail.outbox and mail.outbox[-1].to == ["steward@planning.example.gov.cn"]
    assert "other-steward@planning.example.gov.cn" not in mail.outbox[-1].to

    for _ in range(2):
        assert download(w).status_code == 200
    critical = alerts(kind="download_burst", severity="critical")[0]
    w.licence.refresh_from_db()
    assert critical.licence_suspended and w.licence.status == "suspended"
    assert f"alert #{critical.pk}" in w.licence.status_reason
    # The licence now refuses, with the reason.
    refused = api_client(w.applicant).post(f"/api/licences/{w.licence.pk}/links/", {"format": "geojson"}, format="json")
    assert refused.status_code == 403 and "Suspended" in refused.json()["detail"]
    assert f"risk alert #{critical.pk}: 4 downloads in 60 minutes" in refused.json()["detail"]
    # In Chinese, the same refusal and the alert's own words, with nothing left in English.
    refused = api_client(w.applicant, "zh-hans").post(
        f"/api/licences/{w.licence.pk}/links/", {"format": "geojson"}, format="json")
    detail = refused.json()["detail"]
    assert f"“已暂停”：风险告警 #{critical.pk}：" in detail and "60 分钟内下载 4 次" in detail, detail

    # The steward sees it, acknowledges it, and reinstates the licence.
    steward = api_client(w.steward)
    listed = steward.get("/api/alerts/", {"status": "open"}).json()["results"]
    assert {a["id"] for a in listed} >= {warning.pk, critical.pk}
    assert steward.post(f"/api/alerts/{critical.pk}/acknowledge/", {"note": "spoke to mili-tech"}, format="json").status_code == 200
    assert steward.post(f"/api/licences/{w.licence.pk}/reinstate/", {"reason": "explained"}, format="json").status_code == 200
    w.licence.refresh_from_db()
    assert w.licence.status == "active"


def test_a_link_used_by_another_organisation_is_critical_and_suspends(defended):
    w = defended
    made = link(w.applicant, w.licence)
    with w.run():
        response = api_client(w.researcher).get(made["url"])  # tongji-lab, not on the licence
    assert response.status_code == 403
    (alert,) = alerts(kind="foreign_access")
    assert alert.severity == "critical" and alert.organisation == w.researcher.organisation
    w.licence.refresh_from_db()
    assert w.licence.status == "suspended" and alert.licence_suspended


def test_near_identical_requests_from_several_organisations_are_flagged(defended):
    from access import actions

    w = defended
    text = "训练房间用途识别模型，用于商业地产选址评估"
    parcels = type(w.rooms).objects.get(slug="sz-parcels")
    with w.run():
        actions.submit_application(actor=w.applicant, dataset=parcels, purpose=text)
        assert alerts(kind="similar_requests") == []
        actions.submit_application(actor=w.researcher, dataset=parcels, purpose=text + "。")
    (alert,) = alerts(kind="similar_requests")
    assert alert.severity == "warning" and set(alert.detail["organisations"]) == {"mili-tech", "tongji-lab"}
    assert alert.licence is None and alert.bureau == w.other_bureau


def test_a_budget_past_its_thresholds_warns_then_is_critical(defended):
    from budgets.actions import grant_budget, spend

    w = defended
    grant_budget(actor=w.steward, organisation=w.startup, dataset=w.rooms, epsilon="1", delta="0.00001",
                 source=f"access.application:{w.app_startup.pk}")
    with w.run():
        spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon="0.5", job="", reason="run 1")
    assert alerts(kind="budget_high") == []
    with w.run():
        spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon="0.35", job="", reason="run 2")
    assert [a.severity for a in alerts(kind="budget_high")] == ["warning"]
    with w.run():
        spend(actor=w.applicant, organisation=w.startup, dataset=w.rooms, epsilon="0.1", job="", reason="run 3")
    assert [a.severity for a in alerts(kind="budget_high")] == ["warning", "critical"]


def test_a_licence_close_to_expiry_is_flagged_once(defended):
    from django.utils import timezone

    from defense.tasks import check_expiring_licences_task

    w = defended
    type(w.licence).objects.filter(pk=w.licence.pk).update(valid_until=timezone.now() + timedelta(days=3))
    with w.run():
        assert check_expiring_licences_task() == 1
        assert check_expiring_licences_task() == 0  # still open: not raised twice
    (alert,) = alerts(kind="licence_expiring")
    assert alert.severity == "info" and not alert.licence_suspended


def test_a_traced_leak_is_critical_and_suspends_the_leakers_licence(defended):
    from access_support import content, features

    w = defended
    geoms, _props = features(content(download(w)))
    with w.run():
        response = api_client(w.auditor).post("/api/leaks/", {"file": leak_file(geoms[::3])}, format="multipart")
    assert response.status_code == 201, response.content
    alert = alerts(kind="leak_traced")[0]
    w.licence.refresh_from_db()
    assert alert.severity == "critical" and alert.licence == w.licence and w.licence.status == "suspended"


def test_alert_visibility_and_handling_by_role(defended):
    w = defended
    made = link(w.applicant, w.licence)
    with w.run():
        api_client(w.researcher).get(made["url"])
    (alert,) = alerts(kind="foreign_access")
    seen = {
        role: api_client(user).get("/api/alerts/").json()["count"]
        for role, user in [("steward", w.steward), ("other-steward", w.other_steward), ("applicant", w.applicant),
                           ("holder", w.data_holder), ("auditor", w.auditor), ("admin", w.admin)]
    }
    assert seen == {"steward": 1, "other-steward": 0, "applicant": 0, "holder": 0, "auditor": 1, "admin": 1}
    for user, status in [(w.other_steward, 404), (w.auditor, 403), (w.applicant, 404)]:
        response = api_client(user).post(f"/api/alerts/{alert.pk}/acknowledge/", {"note": "x"}, format="json")
        assert response.status_code == status
    empty = api_client(w.steward).post(f"/api/alerts/{alert.pk}/acknowledge/", {"note": " "}, format="json")
    assert empty.status_code == 400 and "note" in empty.json()
    assert api_client(None).get("/api/alerts/").status_code == 401


def test_the_steward_dashboard_shows_open_alerts_and_marks_them_handled(defended, client):
    w = defended
    made = link(w.applicant, w.licence)
    with w.run():
        api_client(w.researcher).get(made["url"])
    (alert,) = alerts(kind="foreign_access")
    client.force_login(w.steward)
    page = client.get("/").content.decode()
    with translation.override("zh-hans"):
        message = alert.message_text()  # as the page says it, in the portal's language
    assert 'data-testid="alerts"' in page and message in page and 'data-severity="critical"' in page
    assert alert.message not in page  # the untranslated message id never shows
    done = client.post(f"/alerts/{alert.pk}/acknowledge/", {"note": "link shared by mistake"})
    assert done.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == w.steward
    client.force_login(w.other_steward)
    assert client.post(f"/alerts/{alert.pk}/acknowledge/", {"note": "x"}).status_code == 404
    assert message not in client.get("/").content.decode()
