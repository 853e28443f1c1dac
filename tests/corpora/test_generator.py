"""The synthetic district: deterministic and chunk-independent, schema-true, geometrically
sound (rooms tile their floors), realistic identities, and a learnable training signal."""
from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely

from corpora.generator import BLOCK_ROOMS, chunk_count, district_units, generate_chunk, generate_district
from corpora.identity import is_valid_id_number
from corpora.schema import AREA_KINDS, LINE_KINDS, UNIT_SCHEMA

pytestmark = pytest.mark.release

ROOMS = 12_345  # six full blocks and a partial one
SHANGHAI_REGIONS = {"310115", "310104", "310101", "310106"}


@pytest.fixture(scope="module")
def units() -> pa.Table:
    return district_units(7, ROOMS)


@pytest.fixture(scope="module")
def frame(units) -> pd.DataFrame:
    return units.drop_columns(["geometry"]).to_pandas()


@pytest.fixture(scope="module")
def rooms(frame) -> pd.DataFrame:
    return frame[frame.kind == "room"].reset_index(drop=True)


def ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_same_seed_is_byte_identical_and_another_seed_differs():
    first, again, other = district_units(3, 3_000), district_units(3, 3_000), district_units(4, 3_000)
    assert ipc_bytes(first) == ipc_bytes(again)
    assert not first["geometry"].equals(other["geometry"])
    assert not first["owner_name"].equals(other["owner_name"])


def test_chunks_are_independent_and_ids_do_not_depend_on_chunk_size():
    rooms = 9_000
    by_size = {size: list(generate_district(seed=5, rooms=rooms, chunk_rooms=size))
               for size in (2_000, 4_000, 50_000)}
    assert [len(chunks) for chunks in by_size.values()] == [5, 3, 1]
    assert [chunk_count(rooms, size) for size in by_size] == [5, 3, 1]
    ids = {size: set(pa.concat_tables(chunks)["unit_id"].to_pylist()) for size, chunks in by_size.items()}
    assert ids[2_000] == ids[4_000] == ids[50_000]
    # Stronger than the ids: blocks are the unit of randomness, so the rows are the same too.
    whole = [pa.concat_tables(chunks).sort_by("unit_id") for chunks in by_size.values()]
    assert whole[0].equals(whole[1]) and whole[0].equals(whole[2])
    # Any order: a chunk made on its own equals the one the iterator yields.
    for index in reversed(range(3)):
        chunk = generate_chunk(seed=5, rooms=rooms, index=index, chunk_rooms=4_000)
        assert chunk.equals(by_size[4_000][index])
    for table in by_size[2_000]:
        assert pc.sum(pc.equal(table["kind"], "room")).as_py() <= 2_000
    with pytest.raises(IndexError):
        generate_chunk(seed=5, rooms=rooms, index=3, chunk_rooms=4_000)
    assert chunk_count(BLOCK_ROOMS * 3 + 1, chunk_rooms=1) == 4  # a chunk holds at least one block


def test_schema_ids_and_proportions(units, frame, rooms):
    assert units.schema.equals(UNIT_SCHEMA)
    assert units["grid_code"].null_count == len(units)
    assert frame.unit_id.is_unique
    assert len(rooms) == ROOMS and rooms.unit_id.str.fullmatch(r"R\d{9}").all()
    counts = frame.kind.value_counts()
    assert ROOMS / 30 < counts["floor"] < ROOMS / 10
    assert ROOMS / 300 < counts["building"] < ROOMS / 130
    assert counts["parcel"] == counts["building"]
    assert ROOMS / 70 < counts[["road", "pipe", "cable"]].sum() < ROOMS / 35
    assert {"浦东新区", "徐汇区", "黄浦区", "静安区"} >= set(frame.district)
    assert frame.neighbourhood.nunique() >= 2
    buildings = set(frame.unit_id[frame.kind == "building"])
    for kind in ("room", "floor", "parcel"):
        assert set(frame.building_id[frame.kind == kind]) == buildings


def test_geometries_are_valid_and_typed_by_kind(units):
    geoms = shapely.from_wkb(units["geometry"].to_numpy(zero_copy_only=False))
    kinds = units["kind"].to_numpy(zero_copy_only=False)
    assert shapely.is_valid(geoms).all()
    types = shapely.get_type_id(geoms)
    lines = np.isin(kinds, list(LINE_KINDS))
    assert (types[lines] == shapely.GeometryType.LINESTRING).all()
    assert np.isin(kinds[~lines], list(AREA_KINDS)).all()
    assert (types[~lines] == shapely.GeometryType.POLYGON).all()
    lon, lat = shapely.get_coordinates(geoms).T
    assert np.all(np.abs(lon - 121.50) < 0.1) and np.all(np.abs(lat - 31.23) < 0.1)
    moved = next(generate_district(seed=7, rooms=500, origin=(116.40, 39.90)))
    lon, lat = shapely.get_coordinates(shapely.from_wkb(moved["geometry"].to_numpy(zero_copy_only=False))).T
    assert np.all(np.abs(lon - 116.40) < 0.1) and np.all(np.abs(lat - 39.90) < 0.1)


def test_rooms_tile_their_floor(units, frame):
    geoms = shapely.from_wkb(units["geometry"].to_numpy(zero_copy_only=False))
    floor_key = frame.building_id + ":" + frame.floor.astype("Int64").astype(str)
    is_room, is_floor = (frame.kind == "room").to_numpy(), (frame.kind == "floor").to_numpy()
    floors = pd.Series(np.flatnonzero(is_floor), index=floor_key[is_floor])
    room_idx = np.flatnonzero(is_room)
    room_floor = floors.loc[floor_key[is_room]].to_numpy()
    assert shapely.covers(geoms[room_floor], geoms[room_idx]).all()
    sums = pd.Series(shapely.area(geoms[room_idx])).groupby(room_floor).sum()
    np.testing.assert_allclose(sums.to_numpy(), shapely.area(geoms[sums.index.to_numpy()]), rtol=1e-9)
    # No two rooms of one floor overlap (sharing an edge is fine).
    rooms = geoms[room_idx]
    a, b = shapely.STRtree(rooms).query(rooms, predicate="intersects")
    same = (a < b) & (room_floor[a] == room_floor[b])
    overlap = shapely.area(shapely.intersection(rooms[a[same]], rooms[b[same]]))
    assert same.sum() > 0 and (overlap <= 1e-9 * shapely.area(rooms[a[same]])).all()
    # Rooms stack within their building, floors about 3 m high.
    heights = frame.z_max - frame.z_min
    assert heights[frame.kind == "floor"].between(2.9, 3.7).all()
    assert (frame.floor[frame.kind == "room"] < 0).any()
    assert (frame.z_max[is_room & (frame.floor < 0).to_numpy()] <= 0).all()


def test_segments_underground_with_material(frame):
    segments = frame[frame.kind.isin(LINE_KINDS)]
    roads, buried = segments[segments.kind == "road"], segments[segments.kind != "road"]
    assert (roads.z_min == 0).all() and (roads.z_max == 0).all()
    assert ((buried.z_max < 0) & (buried.z_min < buried.z_max) & (buried.z_min > -6)).all()
    assert buried.material.notna().all() and (buried.diameter_mm > 0).all()
    assert set(buried.kind) == {"pipe", "cable"}


def born(id_number: str) -> dt.date:
    return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def test_identities_look_real(rooms):
    for column in ("owner_id_number", "occupant_id_number"):
        numbers = rooms[column].dropna()
        assert len(numbers) > 0.8 * len(rooms)
        assert all(is_valid_id_number(n) for n in numbers)
        assert set(numbers.str[:6]) <= SHANGHAI_REGIONS
        assert all(dt.date(1940, 1, 1) <= born(n) <= dt.date(2005, 12, 31) for n in numbers)
    assert (rooms.owner_id_number.str[17] == "X").any()
    assert rooms.owner_phone.str.fullmatch(r"1[3-9]\d{9}").all()
    assert rooms.owner_name.str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    assert rooms.address.str.fullmatch(r"上海市\w+区\w+路\d+号\d+号楼B?\d+室").all()
    assert rooms.occupant_name.isna().any() and (rooms.occupant_name == rooms.owner_name).mean() > 0.1


def test_some_notes_hide_pii(rooms):
    phone = rooms.notes.str.contains(r"1[3-9]\d{9}")
    plate = rooms.notes.str.contains(r"沪[A-Z]\d{5}")
    ids = rooms.notes.str.extract(r"(\d{17}[\dX])")[0].dropna()
    assert len(ids) and all(is_valid_id_number(n) for n in ids)
    share = (phone | plate | rooms.notes.str.contains(r"\d{17}[\dX]")).mean()
    assert 0.15 < share < 0.25
    assert phone.any() and plate.any()


def test_room_use_and_rent_are_learnable(rooms):
    floor_bucket = np.digitize(rooms.floor, [0, 2, 4])
    area_bucket = np.digitize(rooms.area_m2, [50, 60, 80, 90, 100, 120])
    key = pd.Series(list(zip(floor_bucket, area_bucket, rooms.neighbourhood)))
    train = np.random.default_rng(0).random(len(rooms)) < 0.5
    votes = rooms.room_use[train].groupby(key[train]).agg(lambda uses: uses.value_counts().index[0])
    majority = rooms.room_use[train].value_counts().index[0]
    predicted = key[~train].map(votes).fillna(majority)
    accuracy = (predicted.to_numpy() == rooms.room_use[~train].to_numpy()).mean()
    baseline = (rooms.room_use[~train] == majority).mean()
    assert accuracy >= baseline + 0.15
    assert set(rooms.room_use) == {"residential", "office", "retail", "restaurant", "clinic", "storage"}
    assert np.corrcoef(rooms.area_m2, rooms.monthly_rent)[0, 1] > 0.5
    assert (rooms.monthly_rent > 0).all()
    assert (rooms.household_size[rooms.room_use != "residential"] == 0).all()
    assert rooms.household_size[rooms.room_use == "residential"].between(0, 5).all()
    assert rooms.build_year.between(1930, 2023).all()


def test_sensitive_facilities_and_zones(frame, rooms):
    facilities = frame[frame.kind == "facility"]
    assert len(facilities) >= 1
    categories = ["military", "power_substation", "water_plant", "government_secure"]
    assert facilities.sensitive_category.isin(categories).all()
    flagged = rooms.sensitive_category != ""
    assert 0 < flagged.mean() < 0.1
    assert (frame.sensitive_category[~frame.kind.isin(["room", "facility"])] == "").all()
