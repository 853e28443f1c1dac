"""The catalogue's plain-Python parts, without a database: filter parsing, the spatial
tests, the cells a corpus covers, and the mock sample that the sandbox reuses."""
from __future__ import annotations

import numpy as np
import pytest

from discovery.query import CatalogFilters, boxes_intersect, covers_cell, parse_filters
from corpora import grid
from corpora.mock import MOCK_SEED_BASE, PLACEHOLDER_NAMES, mock_seed, mock_units
from corpora.schema import UNIT_KINDS, UNIT_SCHEMA
from kernel.errors import InvalidInput

pytestmark = [pytest.mark.access]

CLASSES, THEMES = ["open", "conditional", "compute_only"], ["buildings", "transport", "other"]


def parse(**params):
    return parse_filters(params, data_classes=CLASSES, themes=THEMES)


def test_filters_parse_and_empty_values_mean_no_filter():
    assert parse() == CatalogFilters()
    assert parse(q="  道路 ", data_class="", bbox="") == CatalogFilters(q="道路")
    f = parse(bbox="121.4, 31.1,121.6,31.3", cell="G612", theme="transport")
    assert f.bbox == (121.4, 31.1, 121.6, 31.3) and f.cell == "G612" and f.spatial


@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"data_class": "secret"}, "data_class", "not one of open"),
        ({"theme": "weather"}, "theme", "not one of"),
        ({"bbox": "1,2,3"}, "bbox", "four numbers"),
        ({"bbox": "1,2,3,x"}, "bbox", "four numbers"),
        ({"bbox": "1,2,inf,4"}, "bbox", "finite"),
        ({"bbox": "181,0,182,1"}, "bbox", "longitudes"),
        ({"bbox": "0,-91,1,1"}, "bbox", "latitudes"),
        ({"bbox": "2,0,1,1"}, "bbox", "must not exceed"),
        ({"cell": "g123"}, "cell", "not a grid code"),
        ({"cell": "G128"}, "cell", "not a grid code"),
        ({"q": "x" * 201}, "q", "at most 200"),
    ],
)
def test_bad_filters_name_the_parameter(params, field, message):
    with pytest.raises(InvalidInput) as caught:
        parse(**params)
    assert caught.value.field == field and message in caught.value.field_message


def test_boxes_intersect_when_they_share_a_point():
    extent = [121.0, 31.0, 121.5, 31.5]
    assert boxes_intersect(extent, (121.2, 31.2, 121.3, 31.3))  # inside
    assert boxes_intersect(extent, (120.0, 30.0, 122.0, 32.0))  # around
    assert boxes_intersect(extent, (121.5, 31.5, 122.0, 32.0))  # a shared corner
    assert not boxes_intersect(extent, (121.6, 31.0, 122.0, 31.5))  # east
    assert not boxes_intersect(extent, (121.0, 30.0, 121.5, 30.9))  # south
    assert not boxes_intersect([], (0, 0, 1, 1))  # no extent yet


def test_covers_cell_by_prefix_either_way():
    cells = ["G1230", "G1234", "G1260", "G5000"]
    assert covers_cell(cells, "G1234")  # equal
    assert covers_cell(cells, "G12")  # coarser, holds three
    assert covers_cell(cells, "G126")
    assert covers_cell(cells, "G12347777")  # finer, inside G1234
    assert covers_cell(cells, "G50001")
    assert covers_cell(cells, "G")
    assert not covers_cell(cells, "G1231")
    assert not covers_cell(cells, "G12351")
    assert not covers_cell(cells, "G4")
    assert not covers_cell(cells, "G7")
    assert not covers_cell([], "G")


def test_box_cells_are_exactly_the_cells_a_box_touches():
    rng = np.random.default_rng(3)
    for _ in range(100):
        lon, lat, z = rng.uniform(121, 122), rng.uniform(31, 31.5), rng.uniform(-3000, 3000)
        d, dz, level = rng.uniform(0, 0.03), rng.uniform(0, 4000), int(rng.integers(12, 18))
        got = grid.box_cells(lon, lat, z, lon + d, lat + d, z + dz, level).tolist()
        assert got == sorted(set(got))
        g = np.linspace(0, 1, 30)
        lo, la, zz = np.meshgrid(lon + g * d, lat + g * d, z + g * dz)
        assert set(grid.encode(lo.ravel(), la.ravel(), zz.ravel(), level).tolist()) <= set(got)
        bounds = np.stack(grid.decode(np.array(got)), axis=1)
        # Every returned cell meets the box (closed on the box, half-open on the cell).
        assert (bounds[:, 0] <= lon + d).all() and (bounds[:, 3] > lon).all()
        assert (bounds[:, 1] <= lat + d).all() and (bounds[:, 4] > lat).all()
        assert (bounds[:, 2] <= z + dz).all() and (bounds[:, 5] > z).all()


def test_box_cells_vectorised_and_refusals():
    boxes = np.array([[121.40, 31.20, 0, 121.41, 31.21, 10], [121.45, 31.22, -5, 121.45, 31.22, -5]])
    together = set(grid.box_cells(*boxes.T, 16).tolist())
    apart = set(grid.box_cells(*boxes[0], 16).tolist()) | set(grid.box_cells(*boxes[1], 16).tolist())
    assert together == apart
    assert grid.box_cells([], [], [], [], [], [], 16).tolist() == []
    with pytest.raises(ValueError, match="lon_max: 120.0 is less than lon_min"):
        grid.box_cells(121.0, 31.0, 0.0, 120.0, 31.1, 1.0, 16)
    with pytest.raises(ValueError, match="level: must be"):
        grid.box_cells(121.0, 31.0, 0.0, 121.1, 31.1, 1.0, 40)
    with pytest.raises(ValueError, match="more than 100 cells"):
        grid.box_cells(121.0, 31.0, 0.0, 122.0, 32.0, 1.0, 16, max_cells=100)


def test_mock_units_are_seeded_synthetic_and_in_the_schema():
    seed = mock_seed("district-rooms")
    assert seed >= MOCK_SEED_BASE and seed == mock_seed("district-rooms") != mock_seed("huangpu-roads")
    table = mock_units(seed=seed, rows=8)
    assert table.schema == UNIT_SCHEMA and table.num_rows == 8
    assert table.equals(mock_units(seed=seed, rows=8))  # the same sample every time
    assert table.column("kind").to_pylist() == list(UNIT_KINDS)  # one of each kind in turn
    ids = table.column("unit_id").to_pylist()
    assert all(u.startswith("SYN-") for u in ids) and len(set(ids)) == 8
    assert all(g and g.startswith("G") for g in table.column("grid_code").to_pylist())
    owners = [n for n in table.column("owner_name").to_pylist() if n]
    assert owners and set(owners) <= set(PLACEHOLDER_NAMES)
    from corpora.identity import is_valid_id_number

    numbers = [n for n in table.column("owner_id_number").to_pylist() if n]
    assert numbers and all(is_valid_id_number(n) and n.startswith("110101") for n in numbers)
    assert all("示例路" in a for a in table.column("address").to_pylist() if a)


def test_mock_units_take_the_kinds_asked_for_and_refuse_bad_input():
    roads = mock_units(seed=mock_seed("roads"), rows=5, kinds=["road", "pipe"])
    assert set(roads.column("kind").to_pylist()) == {"road", "pipe"} and roads.num_rows == 5
    with pytest.raises(ValueError, match="seed: mock seeds start at"):
        mock_units(seed=42, rows=5)  # a seed that ingest accepts could replay a real corpus
    with pytest.raises(ValueError, match="kinds: 'tunnel'"):
        mock_units(seed=MOCK_SEED_BASE, kinds=["tunnel"])
    with pytest.raises(ValueError, match="rows"):
        mock_units(seed=MOCK_SEED_BASE, rows=0)


def test_a_mock_never_replays_a_generated_corpus():
    """Even a corpus generated from the same block layout shares no identifier or name."""
    from corpora.generator import district_units

    real = district_units(seed=7, rooms=2000)
    mock = mock_units(seed=MOCK_SEED_BASE + 7, rows=50)
    for column in ("unit_id", "building_id", "owner_name", "occupant_name", "owner_id_number", "owner_phone",
                   "address"):
        shared = set(real.column(column).to_pylist()) & set(mock.column(column).to_pylist()) - {None}
        assert shared == set(), column
