"""The portal's interactive maps (static/miliao/map.js on Leaflet) and the endpoints they load
their GeoJSON from: each role gets what it may download of a release and no more (issue 14's
rule; tests/access/test_release_maps.py attacks the conditional release's map), a coverage
map shows the grid cells the released features touch (no counts), the offline basemap is drawn from
the open releases, and a configured tile service is the only other host the CSP allows.
(The Chromium test is tests/portal/test_maps_browser.py, a module of its own: this one holds
its world in one open transaction, which a live server's thread would wait on.)"""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from conftest import add_release, build_world, per_test, rolled_back_at_the_end

pytestmark = [pytest.mark.foundation]


@pytest.fixture(scope="module")
def mapped_world(django_db_setup, django_db_blocker):
    """The world with a built (unpublished) release of the open roads dataset, once per module."""
    with rolled_back_at_the_end(django_db_blocker):
        yield add_release(build_world(), rooms=400)


@pytest.fixture
def w(mapped_world, db):
    return per_test(mapped_world)


def _release_table(release, columns=None):
    from releases.actions import release_dir

    return pq.read_table(release_dir(release) / release.outputs["geoparquet"]["path"], columns=columns)


def _vertices(collection: dict) -> np.ndarray:
    geoms = [shapely.from_geojson(json.dumps(f["geometry"])) for f in collection["features"]]
    return shapely.get_coordinates(np.asarray(geoms, dtype=object))


def _rounded(coords: np.ndarray) -> set[tuple[float, float]]:
    from releases.mapdata import DIGITS

    return set(map(tuple, np.round(coords, DIGITS).tolist()))


def _get(client, user, url):
    client.logout()
    if user is not None:
        client.force_login(user)
    return client.get(url)


@pytest.mark.django_db
def test_each_role_gets_the_release_map_it_may_download_and_no_other(w, client):
    from releases import actions as release_actions

    url = f"/releases/{w.release.pk}/map.geojson"
    released = _release_table(w.release)
    base = _rounded(shapely.get_coordinates(shapely.from_wkb(released.column("geometry").to_numpy(
        zero_copy_only=False))))

    # Built, not published: the owning bureau's steward maps the release, with its attributes.
    answer = _get(client, w.steward, url)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/geo+json"
    collection = answer.json()
    assert collection["shows"] == "release" and 100 < len(collection["features"]) <= 1500
    assert _rounded(_vertices(collection)) <= base  # the released vertices, nothing else
    props = collection["features"][0]["properties"]
    assert "kind" in props and "unit_id" in props and "bbox" not in props and "geometry" not in props
    assert set(props) <= set(released.column_names)
    # Nobody else sees an unpublished release at all (as on its page); auditors read everything,
    # but may download nothing, so they get its coverage.
    for user in (None, w.researcher, w.applicant, w.other_steward, w.data_holder):
        assert _get(client, user, url).status_code == 404, user
    assert _get(client, w.auditor, url).json()["shows"] == "coverage"
    assert client.post(url).status_code == 405

    # Published open data: anyone logged in downloads it, so anyone logged in maps it.
    release_actions.publish_release(actor=w.steward, release=w.release)
    for user in (w.researcher, w.applicant, w.other_steward, w.data_holder, w.auditor):
        collection = _get(client, user, url).json()
        assert collection["shows"] == "release" and _rounded(_vertices(collection)) <= base, user
    # An anonymous visitor downloads nothing: where it lies, to the catalogue's grid cell, the
    # cells the released features touch, with no count per cell (exact counts are not private).
    coverage = _get(client, None, url).json()
    assert coverage["shows"] == "coverage" and len(coverage["classes"]) == 1
    corners = _vertices(coverage) / (512.0 / 2**16)
    assert np.allclose(corners, np.round(corners)) and not _rounded(_vertices(coverage)) & base
    assert all(set(f["properties"]) == {"class"} for f in coverage["features"])
    cells = np.array([shapely.from_geojson(json.dumps(f["geometry"])) for f in coverage["features"]])
    boxes = shapely.box(*shapely.bounds(shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))).T)
    touching = np.bincount(shapely.STRtree(boxes).query(cells, predicate="intersects")[0], minlength=len(cells))
    assert (touching >= 1).all()  # no cell without a feature
    assert set(shapely.STRtree(cells).query(boxes, predicate="intersects")[0]) == set(range(len(boxes)))  # all in


@pytest.mark.django_db
def test_dataset_coverage_and_the_offline_basemap_follow_the_catalogue(w, client):
    from releases import actions as release_actions
    from releases.mapdata import BASEMAP_KINDS

    # Compute-only data has no map; a conditional dataset shows where it lies to those who may
    # read it in the catalogue (anonymous visitors read open data only).
    for user in (w.steward, w.researcher, None):
        assert _get(client, user, f"/datasets/{w.rooms.slug}/map.geojson").status_code == 404
    assert _get(client, None, f"/datasets/{w.pipes.slug}/map.geojson").status_code == 404
    roads = _get(client, None, f"/datasets/{w.roads.slug}/map.geojson").json()
    cells = {f["properties"]["class"] for f in roads["features"]}
    assert roads["shows"] == "coverage" and len(roads["features"]) >= 1 and cells == {0}

    # The offline basemap: the open release's reference layers, geometry and kind only, for
    # anyone logged in; nothing for anonymous visitors.
    assert _get(client, w.researcher, "/map/basemap.geojson").json()["features"] == []  # nothing published yet
    release_actions.publish_release(actor=w.steward, release=w.release)
    basemap = _get(client, w.researcher, "/map/basemap.geojson").json()
    kinds = {f["properties"]["kind"] for f in basemap["features"]}
    # Its reference layers (parcels, roads, buildings), or else (rooms by grid cell, as here) its own geometry.
    assert basemap["features"] and (kinds <= set(BASEMAP_KINDS) or not set(_release_table(
        w.release, ["kind"]).column("kind").to_pylist()) & set(BASEMAP_KINDS))
    assert all(set(f["properties"]) == {"kind"} for f in basemap["features"])
    released = _release_table(w.release, ["geometry"]).column("geometry").to_numpy(zero_copy_only=False)
    assert _rounded(_vertices(basemap)) <= _rounded(shapely.get_coordinates(shapely.from_wkb(released)))
    assert _get(client, None, "/map/basemap.geojson").json()["features"] == []


@pytest.mark.django_db
def test_pages_load_a_map_instead_of_inline_svg(w, client, settings):
    from miliao.basemap import basemap_from
    from releases import actions as release_actions

    release_actions.publish_release(actor=w.steward, release=w.release)
    client.force_login(w.researcher)
    page = client.get(f"/releases/{w.release.pk}/").content.decode()
    assert "<svg" not in page and f'data-map-src="/releases/{w.release.pk}/map.geojson"' in page
    assert 'role="region" aria-label="' in page and "<noscript>" in page
    config = json.loads(page.split('id="map-config" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["basemap"] is None and config["kinds"]["road"]["label"] == "道路"
    print(f"release page: {len(page.encode())} bytes")
    dataset = client.get(f"/datasets/{w.roads.slug}/").content.decode()
    assert "<svg" not in dataset and 'data-testid="sample-map"' in dataset

    # A configured tile service reaches the page; without one, the CSP allows no image host.
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"] == ["'self'", "data:"]
    settings.MAP_BASEMAP = basemap_from("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
                                        "&LAYER=vec&TILEMATRIXSET=w&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY",
                                        "天地图", "0,1,2")
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = client.get(f"/releases/{w.release.pk}/").content.decode()
    config = json.loads(page.split('id="map-config" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["basemap"]["subdomains"] == ["0", "1", "2"] and config["kinds"]["road"]["label"] == "Road"


def test_the_basemap_setting_allows_its_own_hosts_and_names_a_bad_value():
    from miliao.basemap import basemap_from

    tianditu = basemap_from("https://t{s}.tianditu.gov.cn/vec_w/wmts?TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=K",
                            subdomains="0,1,2,3,4,5,6,7")
    assert tianditu.hosts() == [f"https://t{i}.tianditu.gov.cn" for i in range(8)]
    assert basemap_from("https://tiles.city.example/{z}/{x}/{y}.png").hosts() == ["https://tiles.city.example"]
    assert basemap_from("").hosts() == [] and basemap_from("").for_page() is None
    with pytest.raises(ValueError, match=r"MILIAO_MAP_BASEMAP_URL must hold \{y\}"):
        basemap_from("https://tiles.city.example/{z}/{x}.png")
    with pytest.raises(ValueError, match="MILIAO_MAP_BASEMAP_URL must be an http"):
        basemap_from("javascript:alert(1)//{z}{x}{y}")
    with pytest.raises(ValueError, match="MILIAO_MAP_BASEMAP_SUBDOMAINS"):
        basemap_from("https://t{s}.example/{z}/{x}/{y}", subdomains="a,*.evil")
