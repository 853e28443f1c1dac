"""Location and height as quasi-identifiers: the adaptive grid cells, the z ranges, the shapes a
policy may choose and the refusals, on small generated units and a small district."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

pytestmark = pytest.mark.release

KEY = bytes(range(32))
LON, LAT = 121.50, 31.23
M = 1 / 95_300  # about a metre of longitude here, in degrees


def classes(lon, lat, strata, rent, z=None, **kw):
    from releases.location import cell_classes

    n = len(lon)
    z0 = np.zeros(n) if z is None else z
    return cell_classes(np.asarray(lon), np.asarray(lat), [pa.array(s) for s in strata], [pa.array(rent)], z0,
                        z0 + 3.0, **{"k": 5, "l": 3, "coarsest": 12, "finest": 20, **kw})


def test_cells_are_fine_where_units_are_dense_and_coarse_where_they_are_sparse():
    rng = np.random.default_rng(1)
    dense = 200  # one building: 200 rooms within 20 m
    sparse = 40  # the same kind of room scattered over 4 km
    lon = np.r_[LON + rng.uniform(0, 20, dense) * M, LON + rng.uniform(-2000, 2000, sparse) * M]
    lat = np.r_[LAT + rng.uniform(0, 20, dense) * M, LAT + rng.uniform(-2000, 2000, sparse) * M]
    result = classes(lon, lat, [np.zeros(dense + sparse, int)], rng.integers(0, 50, dense + sparse))
    level = result.level[result.unit_class]
    assert (result.unit_class >= 0).all()
    assert np.median(level[:dense]) >= 19  # a building-sized cell or finer
    assert np.median(level[dense:]) <= 16  # kilometres
    assert result.size.min() >= 5 and result.distinct.min() >= 3


def test_a_position_fits_exactly_one_class_of_its_stratum_and_each_holds_k_and_l():
    """The attacker knows a unit's stratum and exact position: among the released cells of
    that stratum, the deepest that holds the position is the unit's own class, which has k
    members and l rents. So knowing position, stratum and the algorithm leaves k candidates."""
    from corpora import grid

    rng = np.random.default_rng(7)
    n = 3000
    centres = rng.uniform(-1500, 1500, (40, 2))  # clustered, like buildings
    at = centres[rng.integers(0, 40, n)] + rng.normal(0, 30, (n, 2))
    lon, lat = LON + at[:, 0] * M, LAT + at[:, 1] * M
    stratum = rng.integers(0, 60, n)  # 50 units a stratum: some cells fail
    stratum[:3] = 60  # a stratum of three, suppressed
    rent = rng.integers(0, 4, n)  # few values, so l bites
    result = classes(lon, lat, [stratum], rent)
    kept = np.flatnonzero(result.unit_class >= 0)
    assert 0.8 * n < len(kept) <= n - 3  # most kept, the small stratum suppressed
    assert len(set(result.level[result.unit_class[kept]])) >= 4  # at several levels
    assert (np.bincount(result.unit_class[kept]) >= 5).all()
    for c in range(result.classes):
        assert len(set(rent[result.unit_class == c])) >= 3
    cls_stratum = np.empty(result.classes, int)
    cls_stratum[result.unit_class[kept]] = stratum[kept]
    for u in rng.choice(kept, 300, replace=False):
        same = np.flatnonzero(cls_stratum == stratum[u])
        column, row = grid.horizontal_cells(lon[u], lat[u], result.level[same].astype(int))
        holds = same[(column == result.column[same]) & (row == result.row[same])]
        deepest = holds[np.argmax(result.level[holds])]
        assert deepest == result.unit_class[u]
        assert (result.level[holds] < result.level[deepest]).sum() == len(holds) - 1  # one class per level


def test_a_stratum_too_small_even_at_the_coarsest_cell_is_suppressed_with_its_reason():
    lon = np.full(12, LON) + np.arange(12) * M
    strata = [np.r_[np.zeros(8, int), np.ones(4, int)]]
    rent = np.r_[[1, 1, 1, 1, 1, 1, 1, 2], [1, 2, 3, 4]]
    result = classes(lon, np.full(12, LAT), strata, rent)
    assert (result.unit_class < 0).all()
    assert result.reason.tolist() == [2] * 8 + [1] * 4  # 8 with two rents (l), 4 too few (k)


def test_a_class_z_range_is_its_band_in_its_cell():
    """Heights say no more than band and cell: every class of one band in one cell gets the
    same z range, the whole band's there, holding each member's own."""
    rng = np.random.default_rng(3)
    n = 600
    lon, lat = LON + rng.uniform(0, 30, n) * M, LAT + rng.uniform(0, 30, n) * M
    floor = rng.integers(1, 7, n)
    band = (floor >= 4).astype(int)
    z = (floor - 1) * 3.2
    result = classes(lon, lat, [band, rng.integers(0, 3, n)], rng.integers(0, 9, n), z=z,
                     bands=[pa.array(band)])
    kept = result.unit_class >= 0
    c = result.unit_class[kept]
    assert (result.z_min[c] <= z[kept]).all() and (result.z_max[c] >= z[kept] + 3.0).all()
    cells = {}
    for cls in range(result.classes):
        members = result.unit_class == cls
        key = (band[members][0], result.level[cls], result.column[cls], result.row[cls])
        cells.setdefault(key, set()).add((result.z_min[cls], result.z_max[cls]))
    assert all(len(ranges) == 1 for ranges in cells.values())
    # All the rooms lie in one building-sized cell: each band's range is the band's, floors 1-3 and 4-6.
    assert {tuple(r)[0] for key, r in cells.items() if key[0] == 0} == {(0.0, z[band == 0].max() + 3.0)}
    assert {tuple(r)[0] for key, r in cells.items() if key[0] == 1} == {(z[band == 1].min(), z.max() + 3.0)}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"location": "exact"}, "'location' is 'exact'"),  # exact footprints beside monthly_rent
        ({"location": "street"}, "'location' must be one of"),
        ({"pseudonymize": ["unit_id", "building_id"], "drop": ["owner_name"]}, "'pseudonymize' keeps join key 'building_id'"),
        ({"cell_levels": [20, 14]}, "'cell_levels'"),
        ({"cell_levels": [14, 30]}, "'cell_levels'"),
        ({"max_suppressed": 1.5}, "'max_suppressed'"),
    ],
)
def test_a_policy_locating_units_badly_is_refused_naming_the_field(change, field):
    from releases.desensitize import UNIT_POLICY, DesensitizePolicy

    with pytest.raises(ValueError) as refused:
        DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(), **change})
    assert field in str(refused.value)


def test_exact_geometry_is_allowed_only_without_sensitive_columns_and_says_what_to_choose():
    from releases.desensitize import UNIT_POLICY, DesensitizePolicy

    with pytest.raises(ValueError, match="Choose 'cell'.*or 'aggregate'"):
        DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(), "location": "exact"})
    pipes = DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(), "location": "exact", "sensitive": [], "l": 1})
    assert pipes.location == "exact"


@pytest.mark.parametrize(
    "desensitize, lightweight, message",
    [
        ({}, {"level_of_detail": "floor"}, "lightweight.level_of_detail: desensitize.location 'cell'"),
        ({"location": "aggregate"}, {"level_of_detail": "room"}, "lightweight.level_of_detail: desensitize.location 'aggregate'"),
        ({"location": "aggregate"}, {"level_of_detail": "floor"}, "desensitize.drop: level of detail 'floor' groups rooms by 'building_id'"),
    ],
)
def test_location_and_level_of_detail_must_agree(desensitize, lightweight, message):
    from releases.desensitize import UNIT_POLICY
    from releases.pipeline import ReleaseSpec

    spec = {"desensitize": {**UNIT_POLICY.to_dict(), **desensitize}, "lightweight": lightweight}
    with pytest.raises(ValueError) as refused:
        ReleaseSpec.from_dict(spec)
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    from corpora.generator import generate_district
    from corpora.store import write_corpus

    path = tmp_path_factory.mktemp("district") / "district.parquet"
    write_corpus(generate_district(seed=5, rooms=3000), path)
    return path


@pytest.fixture(scope="module")
def cell_release(district, tmp_path_factory):
    from releases.pipeline import ReleaseSpec, run_release

    out = tmp_path_factory.mktemp("cell") / "release"
    report = run_release(district, ReleaseSpec(), KEY, out)
    return report, pq.read_table(out / report["outputs"]["geoparquet"]["path"])


def test_a_cell_release_keeps_rooms_but_locates_them_only_by_their_class(cell_release):
    from corpora import grid
    from releases.desensitize import UNIT_POLICY

    report, released = cell_release
    assert "building_id" not in released.column_names  # it would lead back to the building
    frame = released.to_pandas()
    assert set(frame["kind"]) == {"room"} and len(frame) > 2000
    # Every room's geometry is a grid cell of the policy's levels (moved by the shift).
    bounds = shapely.bounds(shapely.from_wkb(frame["geometry"]))
    levels = np.rint(np.log2(512 / (bounds[:, 2] - bounds[:, 0])))
    assert set(levels) <= set(range(14, 21))
    # k and l hold over what a row shows: cell, height and the declared quasi-identifiers.
    shown = ["geometry", "z_min", "z_max", *UNIT_POLICY.quasi_identifiers]
    groups = frame.groupby(shown, dropna=False)
    assert groups.size().min() >= 5 and groups["monthly_rent"].nunique().min() >= 3
    # The z range is the floor band's within the cell: rooms of one band and cell share it.
    assert frame.groupby(["geometry", "floor"])[["z_min", "z_max"]].nunique().max().max() == 1
    # grid_code names the cell across the band, never a finer cell.
    lon0, lat0, _, lon1, lat1, _ = grid.decode(frame["grid_code"].to_numpy(str))
    assert ((lon1 - lon0) >= (bounds[:, 2] - bounds[:, 0]) * 0.8).all()
    location = report["desensitized"]["location"]
    assert location["shape"] == "cell" and sum(v["units"] for v in location["levels"].values()) == len(frame)
    assert report["desensitized"]["k_anonymity"]["k_reached"] >= 5


def test_an_aggregate_release_keeps_exact_floors_of_at_least_k_rooms(district, tmp_path):
    from releases.location import with_location
    from releases.pipeline import ReleaseSpec, run_release

    spec = with_location(ReleaseSpec(), "aggregate", "floor")
    report = run_release(district, spec, KEY, tmp_path / "floors")
    released = pq.read_table(tmp_path / "floors" / report["outputs"]["geoparquet"]["path"]).to_pandas()
    assert set(released["kind"]) == {"floor"} and (released["unit_count"] >= 5).all()
    assert report["attacks"]["reidentification"]["reidentified"] == 0


def test_a_policy_whose_k_cannot_be_met_names_what_to_coarsen(district, tmp_path):
    from releases.desensitize import UNIT_POLICY, DesensitizePolicy
    from releases.location import PolicyUnmet
    from releases.pipeline import ReleaseSpec, run_release

    strict = ReleaseSpec(desensitize=DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(), "k": 40}))
    with pytest.raises(PolicyUnmet) as refused:
        run_release(district, strict, KEY, tmp_path / "strict")
    message = str(refused.value)
    assert "k=40 and l=3 cannot hold for" in message and "even at grid level 14" in message
    assert "more than max_suppressed 20%" in message
    assert "drop quasi-identifier" in message and "coarsen the floor bands" in message
    assert not (tmp_path / "strict").exists() and not list(tmp_path.iterdir())


def test_a_policy_naming_a_column_the_corpus_lacks_is_refused_before_any_pass(district, tmp_path):
    from releases.desensitize import UNIT_POLICY, DesensitizePolicy
    from releases.pipeline import ReleaseSpec, run_release

    policy = DesensitizePolicy.from_dict({**UNIT_POLICY.to_dict(),
                                          "quasi_identifiers": [*UNIT_POLICY.quasi_identifiers, "postcode"]})
    with pytest.raises(ValueError, match="'quasi_identifiers' names column 'postcode'"):
        run_release(district, ReleaseSpec(desensitize=policy), KEY, tmp_path / "r")
    assert not list(tmp_path.iterdir())


def test_switching_location_moves_the_join_keys_it_implies():
    from releases.desensitize import UNIT_POLICY
    from releases.location import location_policy

    aggregate = location_policy(UNIT_POLICY.to_dict(), "aggregate")
    assert "building_id" in aggregate["pseudonymize"] and "building_id" not in aggregate["drop"]
    back = location_policy(aggregate, "cell")
    assert back["pseudonymize"] == ["unit_id"] and "building_id" in back["drop"]
    assert json.dumps(back, sort_keys=True) == json.dumps({**UNIT_POLICY.to_dict(), "drop": back["drop"]},
                                                          sort_keys=True)
