"""Searching the catalogue through /api/datasets/: text in zh and en, class, theme,
district, a box and a grid cell, each with what it must find and what it must not, and bad
values refused naming the parameter."""
from __future__ import annotations

import pytest

from catalog_support import add_corpus, describe
from conftest import add_release, api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


@pytest.fixture
def catalog_world(world):
    """The roads (open) at the generator's origin with a release; the rooms (compute-only)
    further west; the pipes and the Shenzhen parcels without any version."""
    w = describe(add_release(world))
    w.rooms_corpus = add_corpus(w, w.rooms, seed=5)
    return w


def found(w, query: str, user=None) -> set[str]:
    response = api_client(user or w.applicant).get(f"/api/datasets/?{query}")
    assert response.status_code == 200, response.json()
    return {d["slug"] for d in response.json()["results"]}


ALL = {"district-rooms", "pudong-pipes", "huangpu-roads", "sz-parcels"}


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ALL),
        ("q=道路", {"huangpu-roads"}),  # zh title (道路段) and description
        ("q=租金", {"district-rooms"}),  # zh description
        ("q=管线", {"pudong-pipes"}),  # zh keyword and title
        ("q=rent", {"district-rooms"}),  # en description and keyword
        ("q=ROAD%20CENTRE", {"huangpu-roads"}),  # en description, any case
        ("q=shenzhen", {"sz-parcels"}),  # en title
        ("q=roads", {"huangpu-roads"}),  # en keyword
        ("q=没有这个词", set()),
        ("q=nothing-like-this", set()),
        ("data_class=open", {"huangpu-roads"}),
        ("data_class=conditional", {"pudong-pipes", "sz-parcels"}),
        ("data_class=compute_only", {"district-rooms"}),
        ("theme=transport", {"huangpu-roads"}),
        ("theme=buildings", {"district-rooms"}),
        ("theme=environment", set()),
        ("district=浦东新区", {"district-rooms", "pudong-pipes"}),
        ("district=浦东", {"district-rooms", "pudong-pipes"}),
        ("district=黄浦区", {"huangpu-roads"}),
        ("district=徐汇区", set()),
        ("data_class=conditional&district=浦东", {"pudong-pipes"}),
        ("q=房间&theme=transport", set()),
        ("data_class=&theme=&q=", ALL),  # empty values filter nothing
    ],
)
def test_text_class_theme_and_district_filters(catalog_world, query, expected):
    assert found(catalog_world, query) == expected


def test_bbox_meets_the_newest_versions_extent(catalog_world):
    from discovery.metadata import public_extent

    w = catalog_world
    # The search sees what the catalogue shows: each extent out to its cells (a finer one
    # would let repeated searches find the corpus's true bounds).
    road, room = public_extent(w.corpus.extent, 16), public_extent(w.rooms_corpus.extent, 16)
    box = lambda e: ",".join(str(v) for v in e)  # noqa: E731
    assert found(w, f"bbox={box(w.corpus.extent)}") == {"huangpu-roads"}
    assert found(w, f"bbox={box(room)}") == {"district-rooms"}
    # A box inside the extent, one touching only its corner, one around both corpora.
    mid_lon, mid_lat = (road[0] + road[2]) / 2, (road[1] + road[3]) / 2
    assert found(w, f"bbox={mid_lon},{mid_lat},{mid_lon + 1e-4},{mid_lat + 1e-4}") == {"huangpu-roads"}
    assert found(w, f"bbox={road[2]},{road[3]},{road[2] + 1},{road[3] + 1}") == {"huangpu-roads"}
    assert found(w, "bbox=121.0,30.9,122.0,31.5") == {"huangpu-roads", "district-rooms"}
    # Beijing, and just east of the roads: nothing. Datasets without versions never match.
    assert found(w, "bbox=116.0,39.5,117.0,40.5") == set()
    assert found(w, f"bbox={road[2] + 1e-4},{road[1]},{road[2] + 1},{road[3]}") == set()
    assert found(w, "bbox=121.0,30.9,122.0,31.5&data_class=compute_only") == {"district-rooms"}


def test_bbox_uses_the_newest_version_only(catalog_world):
    w = catalog_world
    add_corpus(w, w.roads, seed=8, origin=(121.70, 31.35))  # the roads move east in version 2
    old = ",".join(str(v) for v in w.corpus.extent)
    assert found(w, f"bbox={old}") == set()
    assert found(w, "bbox=121.6,31.3,121.8,31.4") == {"huangpu-roads"}


def test_cell_matches_covered_cells_by_prefix_either_way(catalog_world):
    from corpora import grid

    w = catalog_world
    w.corpus.refresh_from_db()
    road_cell, room_cell = w.corpus.cells[0], w.rooms_corpus.cells[0]
    assert not set(w.corpus.cells) & set(w.rooms_corpus.cells)
    assert found(w, f"cell={road_cell}") == {"huangpu-roads"}
    assert found(w, f"cell={room_cell}") == {"district-rooms"}
    assert found(w, f"cell={road_cell}0123") == {"huangpu-roads"}  # a finer cell inside a covered one
    assert found(w, f"cell={road_cell[:14]}") == {"huangpu-roads"}  # a coarser cell holding a covered one
    assert found(w, f"cell={road_cell[:8]}") == {"huangpu-roads", "district-rooms"}  # all of Shanghai
    assert found(w, "cell=G") == {"huangpu-roads", "district-rooms"}  # the root holds everything
    beijing = grid.encode(116.4, 39.9, 0.0, 16)
    assert found(w, f"cell={beijing}") == set()
    # A neighbour of a covered cell that no unit touches does not match.
    free = next(c for c in grid.neighbours(road_cell) if c not in set(w.corpus.cells))
    assert found(w, f"cell={free}") == set()
    assert found(w, f"cell={road_cell}&theme=buildings") == set()


@pytest.mark.parametrize(
    "query,parameter",
    [
        ("data_class=secret", "data_class"),
        ("theme=weather", "theme"),
        ("bbox=121,31,122", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("bbox=122,31,121,32", "bbox"),  # min above max
        ("bbox=121,95,122,96", "bbox"),  # latitude out of range
        ("bbox=121,31,nan,32", "bbox"),
        ("cell=X123", "cell"),
        ("cell=G9", "cell"),
        ("cell=G" + "0" * 33, "cell"),  # deeper than level 32
        ("q=" + "x" * 201, "q"),
        ("district=" + "区" * 201, "district"),
    ],
)
def test_bad_filter_values_are_400_naming_the_parameter(world, query, parameter):
    for path in ("/api/datasets/", "/api/datasets/dcat/"):
        response = api_client(world.applicant).get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.content)
        assert parameter in response.json(), response.json()


def test_every_role_searches_and_anonymous_callers_are_refused(catalog_world):
    w = catalog_world
    assert api_client().get("/api/datasets/?q=道路").status_code == 401
    for user in w.by_role.values():
        assert found(w, "q=道路", user) == {"huangpu-roads"}
