"""Django admin: stewards and admins only, every model registered, the event log read-only,
and an edit there is an event like any other."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]


def test_every_model_is_registered():
    from django.apps import apps
    from django.contrib import admin

    ours = [m for app in ("accounts", "catalog", "access", "provenance", "progress", "budgets", "jobs", "innovation") for m in apps.get_app_config(app).get_models()]
    assert [m.__name__ for m in ours if m not in admin.site._registry] == []


@pytest.mark.parametrize("role", ["applicant", "data_holder", "auditor"])
def test_other_roles_are_kept_out_of_admin(world, client, role):
    client.force_login(world.by_role[role])
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_steward_reads_the_event_log_but_cannot_change_it(world, client):
    from provenance.models import LineageEvent

    client.force_login(world.steward)
    listing = client.get("/admin/provenance/lineageevent/")
    assert listing.status_code == 200 and "accounts.user_created" in listing.content.decode()
    event = LineageEvent.objects.get(seq=1)
    page = client.get(f"/admin/provenance/lineageevent/{event.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    posted = client.post(f"/admin/provenance/lineageevent/{event.pk}/change/", {"payload": "{}"})
    assert posted.status_code == 403
    assert client.post(f"/admin/provenance/lineageevent/{event.pk}/delete/").status_code == 403
    assert LineageEvent.objects.get(seq=1).payload == event.payload


def test_steward_edits_own_dataset_in_admin_and_it_is_recorded(world, client):
    from provenance.models import LineageEvent

    client.force_login(world.steward)
    url = f"/admin/catalog/dataset/{world.rooms.pk}/change/"
    response = client.post(url, {"title": "建筑单元(间)", "title_en": "Rooms", "description": "新描述", "holders": [world.district.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]
    world.rooms.refresh_from_db()
    assert world.rooms.description == "新描述"
    event = LineageEvent.objects.order_by("-seq").first()
    assert event.event_type == "admin.object_changed" and event.subject == f"catalog.dataset:{world.rooms.pk}"
    assert '"description"' in event.payload and event.actor == world.steward.actor_label


def test_steward_cannot_edit_another_bureaus_dataset(world, client):
    client.force_login(world.steward)
    response = client.post(f"/admin/catalog/dataset/{world.foreign.pk}/change/", {"title": "hijacked"})
    assert response.status_code == 403
    world.foreign.refresh_from_db()
    assert world.foreign.title == "深圳地块"


def test_only_admins_add_organisations_in_admin(world, client):
    from accounts.models import Organisation

    client.force_login(world.steward)
    assert client.get("/admin/accounts/organisation/add/").status_code == 403
    client.force_login(world.admin)
    response = client.post(
        "/admin/accounts/organisation/add/", {"code": "new-lab", "name": "新实验室", "name_en": "", "kind": "research_lab"}
    )
    assert response.status_code == 302
    org = Organisation.objects.get(code="new-lab")
    from provenance.models import LineageEvent

    assert LineageEvent.objects.filter(event_type="admin.object_added", subject=f"accounts.organisation:{org.pk}").exists()
