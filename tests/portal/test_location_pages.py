"""The steward's pages for location and height as quasi-identifiers: the policy form explains
the choice in the user's language, the preview shows what each choice keeps, a policy that
would put exact footprints beside per-room attributes is refused naming the field, and the
release page shows the re-identification measured on the release."""
from __future__ import annotations

import re
from html import unescape

import pytest

pytestmark = [pytest.mark.release, pytest.mark.django_db]


def _page(client, url, language="zh-hans", **post):
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    response = client.post(url, post) if post else client.get(url)
    assert response.status_code in (200, 302)
    return unescape(response.content.decode())


def _form(w, **change):
    from portal.release_views import policy_form_values
    from releases.pipeline import ReleaseSpec

    values = policy_form_values(ReleaseSpec.from_dict(w.policy.spec))
    values.update(change)
    return values


def test_the_release_page_shows_the_measured_reidentification_in_the_users_language(release_world, client):
    w = release_world
    client.force_login(w.steward)
    figure = w.release.report["attacks"]["reidentification"]
    assert figure["reidentified"] == 0 and figure["targets"] > 100
    zh = _page(client, f"/releases/{w.release.pk}/")
    block = zh.split('data-testid="reidentification-card"', 1)[1].split("</section>", 1)[0]
    assert f"{figure['reidentified']} / {figure['targets']} 个抽样目标被再识别（候选集小于 k=5）" in block
    assert "真实楼栋底图" in block
    en = _page(client, f"/releases/{w.release.pk}/", "en")
    block = en.split('data-testid="reidentification-card"', 1)[1].split("</section>", 1)[0]
    assert f"{figure['reidentified']} of {figure['targets']} sampled targets re-identified" in block
    assert "true basemap of building footprints" in block
    assert "By grid cell: each unit's geometry is its equivalence class's grid cell" in en


def test_the_policy_form_explains_the_choice_and_the_preview_shows_what_each_keeps(release_world, client):
    w = release_world
    client.force_login(w.steward)
    url = f"/datasets/{w.roads.slug}/"
    form = _page(client, url)
    assert 'name="location"' in form and "位置和高度本身就是准标识符" in form
    assert "Anyone knows a target's building and floor" in _page(client, url, "en")

    html = _page(client, url, "en", do="preview", **_form(w))
    table = html.split('data-testid="location-choices"', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r'data-location="([\w-]+)">(.*?)</tr>', table, re.S))
    assert set(rows) == {"cell-room", "aggregate-floor", "aggregate-building"}
    assert "grid cells, no exact outline" in rows["cell-room"] and "kept per room: monthly_rent" in rows["cell-room"]
    assert "exact floor outlines" in rows["aggregate-floor"] and "only sums or averages" in rows["aggregate-floor"]
    assert "exact building outlines" in rows["aggregate-building"]


def test_a_form_that_would_release_exact_footprints_with_rent_is_refused_naming_the_field(release_world, client):
    from releases.models import ReleasePolicy

    w = release_world
    client.force_login(w.steward)
    before = ReleasePolicy.objects.count()
    html = _page(client, f"/datasets/{w.roads.slug}/", do="save", **_form(w, location="exact"))
    assert "policy field 'location' is 'exact'" in html and "Choose 'cell'" in html
    html = _page(client, f"/datasets/{w.roads.slug}/", do="save", **_form(w, location="aggregate"))
    assert "lightweight.level_of_detail: desensitize.location 'aggregate'" in html
    assert ReleasePolicy.objects.count() == before
    # Choosing floors with aggregation is accepted, and pseudonymizes the building it groups by.
    _page(client, f"/datasets/{w.roads.slug}/", do="save", **_form(w, location="aggregate", level_of_detail="floor"))
    saved = ReleasePolicy.objects.order_by("-pk").first().spec
    assert ReleasePolicy.objects.count() == before + 1
    assert saved["desensitize"]["location"] == "aggregate" and "building_id" in saved["desensitize"]["pseudonymize"]


def test_a_policy_saved_before_location_rules_is_shown_adapted_and_refused_for_a_build(release_world, client):
    """A policy version saved before this rule (rooms exact, building pseudonym kept) stays as
    it was recorded; the page shows the form adapted with the reason, and a build under the
    old version is refused, saying what to change."""
    from releases.models import ReleasePolicy
    from releases import actions as release_actions

    w = release_world
    legacy = {**w.policy.spec, "desensitize": {k: v for k, v in w.policy.spec["desensitize"].items()
                                               if k not in ("location", "cell_levels", "max_suppressed")}}
    legacy["desensitize"]["pseudonymize"] = ["unit_id", "building_id"]
    legacy["desensitize"]["drop"] = [c for c in legacy["desensitize"]["drop"] if c != "building_id"]
    old = ReleasePolicy.objects.create(dataset=w.roads, version=w.policy.version + 1, spec=legacy, sha256="0" * 64,
                                       created_by=w.steward)
    client.force_login(w.steward)
    html = _page(client, f"/datasets/{w.roads.slug}/", "en")
    assert "no longer passes" in html and "'pseudonymize' keeps join key 'building_id'" in html
    assert 'name="location"' in html

    # Starting a build under it is refused, saying what to change, and nothing is queued.
    from kernel.errors import InvalidInput
    from releases.models import Release

    before = Release.objects.count()
    with pytest.raises(InvalidInput, match="move it to 'drop'"):
        release_actions.start_release(actor=w.steward, corpus=w.corpus, policy=old)
    assert Release.objects.count() == before
