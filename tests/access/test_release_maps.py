"""A page never shows what its viewer could not download. The release page of the
conditional pipes release, the dataset page and the API, for every role: the owning bureau's
stewards (who hold the release's files) see the release; the licence holder sees their own
fingerprinted package, never the unmarked release; everyone else sees where it lies, to the
grid cell. Compute-only data never becomes a release file at all."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import shapely

from access_support import content, features, licensed_world, link, publish_release, release_base, version_and_policy
from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]

NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def points(text: str) -> set[tuple[float, float]]:
    """Every pair of consecutive numbers in a text: where a vertex would be written."""
    numbers = [float(n) for n in NUMBER.findall(text)]
    return set(zip(numbers, numbers[1:]))


def drawn(client, page: str) -> tuple[str, set[tuple[float, float]]]:
    """What the release page's map shows, and the vertices of the GeoJSON its map loads (from
    the endpoint the page names, fetched with the viewer's session, as the browser does)."""
    shows = re.search(r'data-testid="map" data-shows="(\w*)"', page).group(1)
    src = re.search(r'data-map-src="([^"]+)" data-testid="map"', page).group(1)
    response = client.get(src)
    assert response.status_code == 200 and response["Content-Type"] == "application/geo+json"
    collection = response.json()
    assert collection["shows"] == shows
    return shows, geojson_points(collection)


def geojson_points(collection: dict) -> set[tuple[float, float]]:
    geoms = [shapely.from_geojson(json.dumps(f["geometry"])) for f in collection["features"]]
    return set(map(tuple, shapely.get_coordinates(np.asarray(geoms, dtype=object)).tolist()))


def coordinates(geometries) -> set[tuple[float, float]]:
    """Vertices as a map draws them: rounded to releases.mapdata.DIGITS (1e-7 degrees, about
    1 cm, far below a release's grid step)."""
    from releases.mapdata import DIGITS

    coords = np.round(shapely.get_coordinates(np.asarray(geometries, dtype=object)), DIGITS)
    return set(map(tuple, coords.tolist()))


def raw_geometry(release):
    """The corpus's own geometry: where the units truly are."""
    import pyarrow.parquet as pq
    from django.conf import settings

    table = pq.read_table(f"{settings.STATE_DIR}/{release.corpus.path}", columns=["geometry"])
    return shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))


def nearest_m(geometries, vertices) -> np.ndarray:
    """Each vertex's distance to the nearest of the geometries, in metres (near Shanghai)."""
    lonlat = np.array(sorted(vertices))
    scale = np.array([111_320 * np.cos(np.radians(lonlat[:, 1].mean())), 110_574])
    tree = shapely.STRtree(shapely.transform(geometries, lambda c: c * scale))
    _, distance = tree.query_nearest(shapely.points(lonlat * scale), return_distance=True, all_matches=False)
    return distance


@pytest.fixture
def licensed(world):
    return licensed_world(world)


def test_release_page_maps_only_what_each_role_may_download(licensed, client):
    from access import licensing, packages

    w = licensed
    release = w.pipes_release
    base = coordinates(release_base(release)[0])
    package = coordinates(np.concatenate([
        shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
        for t in packages.batches(licensing.package_spec(release, w.licence))
    ]))
    cell = 512.0 / 2**16  # the catalogue's cells

    def page_for(user) -> str:
        client.force_login(user)
        response = client.get(f"/releases/{release.pk}/")
        assert response.status_code == 200, user
        return response.content.decode()

    shows, numbers = drawn(client, page_for(w.steward))  # the owning bureau: it has the release's files
    assert shows == "release" and len(numbers) > 100 and numbers <= base

    shows, numbers = drawn(client, page_for(w.applicant))  # the licence holder: their own marked copy
    assert shows == "package" and len(numbers & package) > 100
    assert not numbers & base  # not one vertex of the unmarked release
    client.force_login(w.applicant)  # viewing is no download: geometry and kind, the attributes stay in the package
    marked = client.get(f"/releases/{release.pk}/map.geojson").json()["features"]
    assert marked and all(set(f["properties"]) <= {"kind"} for f in marked)

    # The attack: what the map gives the licence holder is, vertex for vertex, what their own
    # download holds, and no vertex of it lies nearer the raw geometry than the download's do.
    downloaded = content(api_client(w.applicant).get(link(w.applicant, w.licence)["url"]))
    download_points = coordinates(features(downloaded)[0])
    assert numbers <= download_points
    raw = raw_geometry(release)
    assert nearest_m(raw, numbers).min() >= nearest_m(raw, download_points).min() - 0.01

    for user in (w.researcher, w.bureau_applicant, w.other_steward, w.data_holder, w.auditor, w.admin):
        page = page_for(user)
        shows, numbers = drawn(client, page)
        assert shows == "coverage", user
        assert numbers and not numbers & base and not numbers & package, user
        lattice = np.array(sorted(numbers)) / cell
        assert np.allclose(lattice, np.round(lattice)), user  # cell corners, nothing finer
        assert not points(page) & base, user  # nor anywhere else on the page

    # Nor do the dataset page and the API, for anyone; the catalogue's extent is given to the cell.
    for user in (w.researcher, w.applicant, w.other_steward, w.auditor):
        client.force_login(user)
        assert not points(client.get(f"/datasets/{w.pipes.slug}/").content.decode()) & base, user
        for url in (f"/api/releases/{release.pk}/", f"/api/datasets/{w.pipes.slug}/",
                    f"/api/datasets/{w.pipes.slug}/dcat/"):
            answer = api_client(user).get(url)
            assert answer.status_code == 200 and not points(answer.content.decode()) & base, (user, url)
    extent = api_client(w.researcher).get(f"/api/datasets/{w.pipes.slug}/").json()["extent"]
    assert np.allclose(np.array(extent) / cell, np.round(np.array(extent) / cell))
    true = w.pipes.versions.get().extent
    assert extent[0] <= true[0] and extent[1] <= true[1] and extent[2] >= true[2] and extent[3] >= true[3]

    # A suspended licence shows its holder no more than anyone else.
    from access import actions

    actions.suspend_licence(actor=w.steward, licence=w.licence, reason="review")
    assert drawn(client, page_for(w.applicant))[0] == "coverage"


def test_an_open_release_is_mapped_for_anyone_logged_in(world, client):
    w = world
    release = publish_release(w, w.roads, rooms=120)
    client.force_login(w.researcher)
    shows, numbers = drawn(client, client.get(f"/releases/{release.pk}/").content.decode())
    assert shows == "release" and numbers & coordinates(release_base(release)[0])


def test_compute_only_data_never_becomes_a_release_file(world, client):
    from access_support import counts
    from releases.models import Release

    w = world
    corpus, policy = version_and_policy(w, w.rooms, rooms=60)
    before = counts()
    refused = api_client(w.steward).post("/api/releases/", {"corpus_version": corpus.pk, "policy": policy.pk},
                                         format="json")
    assert refused.status_code == 403 and "never become a release file" in refused.json()["detail"]
    assert counts() == before and not Release.objects.filter(corpus=corpus).exists()

    # The policy form no longer offers an unshifted release, and a spec asking for one is
    # refused by the preview, naming the field.
    client.force_login(w.steward)
    page = client.get(f"/datasets/{w.rooms.slug}/").content.decode()
    assert '<option value="none"' not in page and 'data-testid="start-release"' not in page
    spec = {**policy.spec, "shift": {"mode": "none"}}
    preview = api_client(w.steward).post("/api/release-policies/preview/",
                                         {"corpus_version": corpus.pk, "spec": spec, "units": 50}, format="json")
    assert preview.status_code == 400 and "shift.mode" in str(preview.json())

    # A compute-only release left from before this rule is never published.
    legacy = Release.objects.create(corpus=corpus, policy=policy, key_encrypted="-", created_by=w.steward,
                                    status="built", report={"shift": {"mode": "none"}}, outputs={})
    refused = api_client(w.steward).post(f"/api/releases/{legacy.pk}/publish/", {}, format="json")
    assert refused.status_code == 403 and "compute-only" in refused.json()["detail"]
    legacy.refresh_from_db()
    assert legacy.status == "built"


def test_the_release_page_says_whether_a_leaked_copy_can_be_traced(licensed, client):
    """Pipes at their exact geometry are fingerprinted group by group; rooms located by grid
    cell (the default room policy) tile the district, so their copies cannot be told apart, and
    the steward reads that on the page before publishing, in either language."""
    from catalog import actions as catalog_actions

    w = licensed
    rooms = catalog_actions.register_dataset(actor=w.steward, slug="pudong-rooms", title="浦东房间",
                                             data_class="conditional")
    cells = publish_release(w, rooms, rooms=3000)
    assert cells.report["desensitized"]["location"]["shape"] == "cell"
    client.force_login(w.steward)

    def page(release, language):
        client.post("/i18n/setlang/", {"language": language, "next": "/"})
        return client.get(f"/releases/{release.pk}/").content.decode()

    pages = {release: {lang: page(release, lang) for lang in ("zh-hans", "en")} for release in (w.pipes_release, cells)}
    assert "泄露的副本可溯源到接收者" in pages[w.pipes_release]["zh-hans"]
    assert "a leaked copy is traced to its recipient" in pages[w.pipes_release]["en"]
    assert "不可溯源" in pages[cells]["zh-hans"] and "Not traceable" in pages[cells]["en"]
