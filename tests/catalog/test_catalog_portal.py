"""The catalogue page (search and filters through the API's filter code, paged), the public
catalogue of open data for anonymous visitors, and each dataset page's actions: offered to
the roles that may take them, refused to a role that posts anyway."""
from __future__ import annotations

import re

import pytest

from access_support import licensed_world
from catalog_support import describe
from conftest import add_release, per_test, rolled_back_at_the_end
from role_support import request_as
from sandbox_support import approve_lab

pytestmark = [pytest.mark.access, pytest.mark.django_db]


@pytest.fixture(scope="module")
def shared(module_world, django_db_blocker):
    """Metadata, a published open release of the roads, a licence on the pipes for the startup,
    the lab's approval on the compute-only rooms: built once, rolled back at the end."""
    from releases import actions as release_actions

    with rolled_back_at_the_end(django_db_blocker):
        w = describe(per_test(module_world))
        add_release(w, rooms=200)
        w.release = release_actions.publish_release(actor=w.steward, release=w.release)
        licensed_world(w)
        approve_lab(w)
        yield w


@pytest.fixture
def w(shared):
    return per_test(shared)


def slugs(response) -> list[str]:
    return re.findall(r'<tr data-slug="([^"]+)"', response.content.decode())


def offered(response) -> set[str]:
    return set(re.findall(r'data-testid="action-([a-z-]+)"', response.content.decode()))


@pytest.mark.parametrize("query,expected", [
    ("", ["district-rooms", "huangpu-roads", "pudong-pipes", "sz-parcels"]),
    ("q=rent", ["district-rooms"]),                       # English text
    ("q=道路", ["huangpu-roads"]),                          # Chinese text
    ("data_class=conditional", ["pudong-pipes", "sz-parcels"]),
    ("theme=transport", ["huangpu-roads"]),
    ("district=浦东", ["district-rooms", "pudong-pipes"]),
    ("west=121.45&south=31.18&east=121.55&north=31.28", ["huangpu-roads", "pudong-pipes"]),  # their corpora lie there
    ("west=10&south=10&east=11&north=11", []),
])
def test_the_catalog_page_filters_as_the_api_does(w, client, query, expected):
    client.force_login(w.applicant)
    response = client.get(f"/catalog/?{query}")
    assert response.status_code == 200
    assert slugs(response) == expected
    bbox = {"west": "lon_min", "south": "lat_min", "east": "lon_max", "north": "lat_max"}
    api_query = query
    if "west=" in query:
        values = dict(p.split("=") for p in query.split("&"))
        api_query = "bbox=" + ",".join(values[k] for k in bbox)
    api = request_as(w, "applicant", "get", f"/api/datasets/?{api_query}").json()
    assert [r["slug"] for r in api["results"]] == expected  # the same filter code answers both


def test_a_bad_filter_is_shown_next_to_its_field_with_what_was_typed(w, client):
    client.force_login(w.applicant)
    response = client.get("/catalog/?q=pipes&west=121&south=31&east=120&north=32")
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-testid="error-bbox"' in html and "最小值不能大于最大值" in html  # in the reader's language
    assert 'name="q" type="search" value="pipes"' in html and 'name="east" inputmode="decimal" value="120"' in html


def test_the_catalog_is_paged_and_keeps_its_filters(w, client):
    from catalog import actions

    for i in range(21):
        actions.register_dataset(actor=w.steward, slug=f"extra-{i:02d}", title=f"道路附表 {i}", data_class="open",
                                 theme="transport")
    client.force_login(w.auditor)
    first = client.get("/catalog/?theme=transport")
    assert len(slugs(first)) == 20 and "第 1 页，共 2 页" in first.content.decode()
    assert 'href="?theme=transport&amp;page=2"' in first.content.decode()
    second = client.get("/catalog/?theme=transport&page=2")
    assert len(slugs(second)) == 2 and not set(slugs(first)) & set(slugs(second))


def test_anonymous_visitors_browse_open_data_only(w, client):
    catalog = client.get("/catalog/")
    assert catalog.status_code == 200 and slugs(catalog) == ["huangpu-roads"]
    assert slugs(client.get("/catalog/?data_class=conditional")) == []
    page = client.get("/datasets/huangpu-roads/")
    assert page.status_code == 200 and offered(page) == {"login"}
    # Real rows of the published release are a download, which needs a login: mock rows here.
    assert 'data-testid="mock-label"' in page.content.decode()
    client.force_login(w.applicant)
    assert 'data-testid="mock-label"' not in client.get("/datasets/huangpu-roads/").content.decode()
    client.logout()
    for slug in ("pudong-pipes", "district-rooms", "sz-parcels"):  # absent, not merely hidden
        assert client.get(f"/datasets/{slug}/").status_code == 404
    assert client.get("/api/datasets/dcat/").status_code == 200
    login = client.get("/accounts/login/").content.decode()
    assert 'data-testid="public-catalog-link"' in login and 'href="/catalog/"' in login
    for path in (f"/releases/{w.release.pk}/download/", "/datasets/huangpu-roads/"):
        response = client.post(path, {"format": "geojson"})  # downloads and changes need a login
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for path in ("/", "/events/", f"/releases/{w.release.pk}/", "/jobs/"):
        assert client.get(path)["Location"].startswith("/accounts/login/")


# Who is offered what on which page: (user, dataset) -> actions.
OFFERS = [
    ("applicant", "huangpu-roads", {"download"}),
    ("applicant", "pudong-pipes", {"licence-download"}),       # the startup's licence
    ("applicant", "district-rooms", {"apply"}),
    ("researcher", "district-rooms", {"job"}),                # the lab's approval names them
    ("researcher", "pudong-pipes", {"apply"}),
    ("bureau_applicant", "pudong-pipes", {"pending"}),        # already applied: no second form
    ("steward", "huangpu-roads", {"download"}),
    ("steward", "pudong-pipes", {"none"}),
    ("steward", "district-rooms", {"none"}),
    ("data_holder", "district-rooms", {"none"}),
    ("auditor", "pudong-pipes", {"none"}),
    ("admin", "district-rooms", {"none"}),
]


@pytest.mark.parametrize("who,slug,expected", OFFERS, ids=[f"{w}-{s}" for w, s, _ in OFFERS])
def test_each_role_is_offered_only_the_actions_it_may_take(w, client, who, slug, expected):
    client.force_login(getattr(w, who))
    response = client.get(f"/datasets/{slug}/")
    assert response.status_code == 200
    assert offered(response) == expected


def test_a_challenge_on_the_dataset_is_offered_to_teams_only(w, client):
    from innovation_support import open_challenge

    open_challenge(w, rooms=300)
    for who, shown in (("applicant", True), ("researcher", True), ("steward", False), ("auditor", False)):
        client.force_login(getattr(w, who))
        assert ("challenge" in offered(client.get("/datasets/district-rooms/"))) == shown, who


def _refused(w, who, path, body):
    from provenance.models import LineageEvent

    before = LineageEvent.objects.count()
    response = request_as(w, who, "post", path, body)
    assert LineageEvent.objects.count() == before, (who, path)  # nothing done, nothing written
    return response


def test_a_role_not_offered_an_action_is_refused_when_it_posts_anyway(w, client):
    from access.models import Application, Download
    from jobs.models import Job

    apply = {"dataset": "pudong-pipes", "purpose": "a planning study of the pipes", "duration_days": "30"}
    for who in ("steward", "auditor", "data_holder", "admin"):
        assert _refused(w, who, "/applications/new/", apply).status_code == 403
    assert _refused(w, "researcher", "/applications/new/", {**apply, "dataset": "huangpu-roads"}).status_code == 400
    for who in ("auditor", "researcher", "steward"):  # not the startup: no download under its licence
        # (a refused download is itself recorded, for the active defense: no event count here)
        response = request_as(w, who, "post", f"/licences/{w.licence.pk}/download/", {"format": "geojson"})
        assert response.status_code in (302, 404) and "/api/downloads/" not in response.get("Location", "")
    assert not Download.objects.exists()
    jobs = Job.objects.count()
    response = _refused(w, "applicant", "/jobs/new/", {"dataset": "district-rooms", "kind": "centralized",
                                                       "title": "no approval", "task": "room-use"})
    assert response.status_code == 400 and Job.objects.count() == jobs
    assert Application.objects.filter(organisation=w.bureau).count() == 1


def test_the_dataset_page_apply_button_opens_the_form_for_that_dataset(w, client):
    client.force_login(w.researcher)
    form = client.get("/applications/new/?dataset=pudong-pipes").content.decode()
    assert '<option value="pudong-pipes" selected>' in form
