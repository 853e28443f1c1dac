"""Each data class end to end through the API: open data downloads without applying;
conditional data goes apply → approve → download → expire or revoke → refused;
compute-only data is never downloaded, and approval grants jobs with a privacy budget."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import shapely

from access_support import (
    PIPE_POLICY,
    content,
    counts,
    features,
    link,
    licensed_world,
    publish_release,
    release_base,
    version_and_policy,
)
from conftest import add_release, api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


def events_of(event_type, subject=None):
    from provenance.models import LineageEvent

    qs = LineageEvent.objects.filter(event_type=event_type)
    if subject is not None:
        qs = qs.filter(subject=subject)
    return list(qs.order_by("seq"))


# --- open ------------------------------------------------------------------------------------


def test_open_class_any_logged_in_user_downloads_without_applying(world):
    from releases import actions as release_actions

    w = add_release(world)
    release_actions.publish_release(actor=w.steward, release=w.release)
    base, keys = release_base(w.release)

    for user in (w.applicant, w.researcher, w.data_holder, w.auditor):
        client = api_client(user)
        made = client.post(
            "/api/download-links/", {"release": w.release.pk, "format": "geojson"}, format="json"
        )
        assert made.status_code == 201, made.content
        response = client.get(made.json()["url"])
        assert response.status_code == 200 and response.streaming
        geoms, props = features(content(response))
        # The open release itself: every unit, unmarked.
        assert len(geoms) == len(base)
        by_id = dict(zip(keys, base))
        assert all(
            shapely.equals_exact(by_id[p["unit_id"]], g, tolerance=1e-12) for g, p in zip(geoms, props)
        )

    downloaded = events_of("access.downloaded")
    assert len(downloaded) == 4
    assert json.loads(downloaded[0].payload)["inputs"] == [f"releases.release:{w.release.pk}"]
    # Nobody applies for open data.
    refused = api_client(w.applicant).post(
        "/api/applications/",
        {"dataset": "huangpu-roads", "purpose": "we want the roads please"},
        format="json",
    )
    assert refused.status_code == 400 and "is open" in refused.json()["dataset"][0]


def test_an_unpublished_open_release_is_not_offered(world):
    w = add_release(world)  # built, not published
    response = api_client(w.applicant).post("/api/download-links/", {"release": w.release.pk}, format="json")
    assert response.status_code == 400 and "no published release" in response.json()["release"][0]


# --- conditional -------------------------------------------------------------------------------


def test_conditional_class_apply_approve_download_then_expire_and_refuse(world):
    from django.utils import timezone

    from access import odrl
    from access.models import Licence

    w = world
    release = publish_release(w, w.pipes, pipes=300, desensitize=PIPE_POLICY())
    base, keys = release_base(release)
    west, south, east, north = shapely.total_bounds(base)
    half = [west - 1e-4, south - 1e-4, (west + east) / 2, north + 1e-4]

    researcher = api_client(w.researcher)
    applied = researcher.post(
        "/api/applications/",
        {
            "dataset": "pudong-pipes",
            "release": release.pk,
            "purpose_category": "research",
            "purpose": "pipe ageing study for a journal article",
            "fields": ["material", "diameter_mm"],
            "area": {"bbox": half},
            "duration_days": 30,
            "people": ["researcher"],
        },
        format="json",
    )
    assert applied.status_code == 201, applied.content
    application = applied.json()
    assert application["status"] == "submitted" and application["release"] == release.pk

    approved = api_client(w.steward).post(
        f"/api/applications/{application['id']}/approve/",
        {"reason": "clear purpose", "download_limit": 3},
        format="json",
    )
    assert approved.status_code == 200, approved.content
    licence_id = approved.json()["licence"]
    licence = researcher.get(f"/api/licences/{licence_id}/").json()
    assert (
        licence["status"] == "active"
        and licence["users"] == ["researcher"]
        and licence["download_limit"] == 3
    )
    assert licence["policy"]["assignee"] == "urn:miliao:org:tongji-lab"
    granted = events_of("access.licence_granted")[-1]
    assert sorted(json.loads(granted.payload)["inputs"]) == sorted(
        [f"access.application:{application['id']}", f"releases.release:{release.pk}"]
    )

    # Download: the researcher's fingerprinted package, cut to the area and the fields.
    response = researcher.get(link(w.researcher, Licence.objects.get(pk=licence_id))["url"])
    assert response.status_code == 200
    geoms, props = features(content(response))
    assert 0 < len(geoms) < len(base)
    in_area = {str(k) for k in keys[shapely.intersects(base, shapely.box(*half))]}
    assert {p["unit_id"] for p in props} == in_area, "exactly the units of the licensed area"
    assert set(props[0]) == {"unit_id", "kind", "z_min", "z_max", "grid_code", "material", "diameter_mm"}
    downloaded = events_of("access.downloaded")[-1]
    assert json.loads(downloaded.payload)["inputs"] == [f"access.licence:{licence_id}"]
    assert Licence.objects.get(pk=licence_id).downloads_used == 1

    # A link issued now, used after the licence has expired, is refused; so is a new one.
    pending = link(w.researcher, Licence.objects.get(pk=licence_id))
    start, end = timezone.now() - timedelta(days=31), timezone.now() - timedelta(days=1)
    Licence.objects.filter(pk=licence_id).update(
        valid_from=start,
        valid_until=end,
        policy=odrl.with_validity(
            Licence.objects.get(pk=licence_id).policy, valid_from=start, valid_until=end
        ),
    )
    before = counts()
    late = researcher.get(pending["url"])
    assert late.status_code == 403 and "expired at" in late.json()["detail"]
    fresh = researcher.post(f"/api/licences/{licence_id}/links/", {"format": "geojson"}, format="json")
    assert fresh.status_code == 403 and "expired at" in fresh.json()["detail"]
    assert counts() == before and Licence.objects.get(pk=licence_id).downloads_used == 1


def test_conditional_class_revoked_licence_is_refused_with_the_reason(world):
    w = licensed_world(world)
    pending = link(w.applicant, w.licence)
    revoked = api_client(w.steward).post(
        f"/api/licences/{w.licence.pk}/revoke/", {"reason": "leak under investigation"}, format="json"
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert events_of("access.licence_revoked", f"access.licence:{w.licence.pk}")

    before = counts()
    response = api_client(w.applicant).get(pending["url"])
    assert response.status_code == 403
    assert (
        response.json()["detail"] == f"licence #{w.licence.pk} is Revoked: leak under investigation"
    )
    chinese = api_client(w.applicant, "zh-hans").get(pending["url"]).json()["detail"]
    assert chinese == f"许可 #{w.licence.pk} 当前为“已撤销”：leak under investigation"  # the reason as written
    refused = api_client(w.applicant).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert refused.status_code == 403 and "Revoked" in refused.json()["detail"]
    assert counts() == before
    # Revocation is final.
    again = api_client(w.steward).post(f"/api/licences/{w.licence.pk}/reinstate/", {}, format="json")
    assert again.status_code == 409


def test_suspension_stops_downloads_until_reinstated(world):
    from access import actions

    w = licensed_world(world)
    actions.suspend_licence(
        actor=None, licence=w.licence, reason="alert: unusual download volume", automatic=True
    )
    event = events_of("access.licence_suspended")[-1]
    assert event.actor == "system" and json.loads(event.payload)["automatic"] is True

    refused = api_client(w.applicant).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert refused.status_code == 403 and "Suspended" in refused.json()["detail"]
    assert "unusual download volume" in refused.json()["detail"]

    reinstated = api_client(w.steward).post(
        f"/api/licences/{w.licence.pk}/reinstate/", {"reason": "false alarm"}, format="json"
    )
    assert reinstated.status_code == 200 and reinstated.json()["status"] == "active"
    assert api_client(w.applicant).get(link(w.applicant, w.licence)["url"]).status_code == 200


def test_a_person_cannot_suspend_without_being_a_steward_and_the_platform_must_say_it_is_automatic(world):
    from access import actions
    from kernel.errors import Refused

    w = licensed_world(world)
    with pytest.raises(Refused, match="only the platform's own defense"):
        actions.suspend_licence(actor=None, licence=w.licence, reason="x")
    with pytest.raises(Refused, match="needs the role"):
        actions.suspend_licence(actor=w.applicant, licence=w.licence, reason="x")


def test_the_download_limit_is_enforced_even_for_links_issued_before_it_ran_out(world):
    w = licensed_world(world, download_limit=2)
    client = api_client(w.applicant)
    first, second, third = (link(w.applicant, w.licence) for _ in range(3))
    assert client.get(first["url"]).status_code == 200
    assert client.get(second["url"]).status_code == 200
    before = counts()
    over = client.get(third["url"])
    assert over.status_code == 403 and "download limit of 2 is used up" in over.json()["detail"]
    more = client.post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert more.status_code == 403 and "download limit of 2 is used up" in more.json()["detail"]
    assert counts() == before


def test_the_policy_not_the_columns_decides(world):
    """Enforcement reads the ODRL policy: a recipient dropped from it is refused although
    the licence's user list still names them."""
    from access.models import Licence

    w = licensed_world(world)
    policy = w.licence.policy
    for rule in policy["permission"]:
        for c in rule["constraint"]:
            if c["leftOperand"] == "recipient":
                c["rightOperand"] = ["urn:miliao:user:somebody-else"]
    Licence.objects.filter(pk=w.licence.pk).update(policy=policy)
    assert w.applicant in w.licence.users.all()
    response = api_client(w.applicant).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert (
        response.status_code == 403 and "urn:miliao:user:applicant is not named" in response.json()["detail"]
    )


def test_a_purpose_other_than_the_licensed_one_is_refused(world):
    w = licensed_world(world)  # the startup applied with the default purpose category "other"
    response = api_client(w.applicant).post(
        f"/api/licences/{w.licence.pk}/links/", {"purpose": "product"}, format="json"
    )
    assert (
        response.status_code == 403
        and "permits the purpose 'other', not 'product'" in response.json()["detail"]
    )


def test_approval_without_a_published_release_grants_no_licence_yet(world):
    response = api_client(world.steward).post(
        f"/api/applications/{world.app_startup.pk}/approve/", {}, format="json"
    )
    assert response.status_code == 200 and response.json()["licence"] is None
    event = events_of("access.application_approved")[-1]
    assert json.loads(event.payload)["grants"] == "nothing yet"


# --- compute-only ----------------------------------------------------------------------------


def test_compute_only_class_download_refused_and_approval_grants_jobs_with_a_budget(world):
    from access import rules as access_rules
    from kernel.errors import Refused

    w = world
    # Its rows never become a release file, so there is nothing to download: building one
    # is refused, naming why, and records nothing.
    corpus, policy = version_and_policy(w, w.rooms)
    before = counts()
    refused = api_client(w.steward).post(
        "/api/releases/", {"corpus_version": corpus.pk, "policy": policy.pk}, format="json"
    )
    assert refused.status_code == 403, refused.content
    assert "district-rooms is compute-only" in refused.json()["detail"] and counts() == before

    before = counts()
    bad = api_client(w.steward).post(
        f"/api/applications/{w.app_lab.pk}/approve/", {"epsilon": "-1"}, format="json"
    )
    assert bad.status_code == 400 and "epsilon" in bad.json() and counts() == before
    limit = api_client(w.steward).post(
        f"/api/applications/{w.app_lab.pk}/approve/", {"download_limit": 5}, format="json"
    )
    assert limit.status_code == 400 and "never downloaded" in limit.json()["download_limit"][0]

    approved = api_client(w.steward).post(
        f"/api/applications/{w.app_lab.pk}/approve/",
        {"reason": "ok", "epsilon": "2.5", "delta": "1e-5"},
        format="json",
    )
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved" and approved.json()["licence"] is None
    budgets = api_client(w.researcher).get("/api/budgets/").json()["results"]
    assert [(b["dataset"], b["organisation"], b["epsilon_total"]) for b in budgets] == [
        ("district-rooms", "tongji-lab", "2.500000")
    ]
    assert api_client(w.researcher).get("/api/licences/").json()["count"] == 0
    event = events_of("access.application_approved", f"access.application:{w.app_lab.pk}")[-1]
    assert json.loads(event.payload)["grants"] == "jobs"
    granted = events_of("budgets.granted")[-1]
    assert f"access.application:{w.app_lab.pk}" in json.loads(granted.payload)["inputs"]

    # Jobs: the named researcher may run them; another organisation may not.
    w.app_lab.refresh_from_db()
    access_rules.check_run_job(w.researcher, w.rooms, w.app_lab)
    with pytest.raises(Refused):
        access_rules.check_run_job(w.applicant, w.rooms, w.app_lab)
