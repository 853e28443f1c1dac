"""Desensitize: direct identifiers leave, join keys become keyed pseudonyms that join inside
a release and link nothing across releases, and after generalization and suppression no
record can be singled out by its quasi-identifiers, which an attacker here tries to do."""
from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pytest

from releases.desensitize import (
    UNIT_POLICY,
    DesensitizePolicy,
    desensitize,
    generalize,
    k_anonymize,
    pseudonymize,
)

pytestmark = pytest.mark.release

KEY = b"release-1-key-0123456789abcdefgh"
OTHER_KEY = b"release-2-key-0123456789abcdefgh"
DIRECT_IDENTIFIERS = [
    "owner_name", "owner_id_number", "owner_phone", "occupant_name", "occupant_id_number", "address"
]
HOUSEHOLD_SHARES = [0.25, 0.35, 0.25, 0.1, 0.04, 0.01]  # people per flat, 1 to 6


def _units(n: int = 20_000, seed: int = 3) -> pa.Table:
    """Rooms in buildings: district, neighbourhood, year and three flat layouts come with
    the building; floor, household and rent with the room. Areas vary a little around the
    layout's, so every room is unique on its raw quasi-identifiers."""
    rng = np.random.default_rng(seed)
    n_buildings = n // 200
    building = rng.integers(0, n_buildings, n)
    district = rng.integers(0, 3, n_buildings)
    neighbourhood = district * 2 + rng.integers(0, 2, n_buildings)
    build_year = rng.integers(1960, 2021, n_buildings)
    storeys = rng.integers(3, 25, n_buildings)
    layouts = rng.gamma(6.0, 13.0, (n_buildings, 3))
    area = layouts[building, rng.integers(0, 3, n)] + rng.normal(0.0, 1.0, n)
    phones = [f"138{i:08d}" for i in range(n)]
    return pa.table(
        {
            "unit_id": [f"U{i:07d}" for i in range(n)],
            "building_id": [f"B{b:05d}" for b in building],
            "district": np.array(["浦东新区", "徐汇区", "静安区"])[district[building]],
            "neighbourhood": np.array([f"街道{i}" for i in range(6)])[neighbourhood[building]],
            "floor": rng.integers(-1, storeys[building] + 1).astype(np.int16),
            "area_m2": area,
            "build_year": build_year[building].astype(np.int16),
            "household_size": rng.choice(np.arange(1, 7, dtype=np.int16), n, p=HOUSEHOLD_SHARES),
            "monthly_rent": np.round(area * rng.uniform(60, 120, n), -1),
            "owner_name": ["张三"] * n,
            "owner_id_number": ["11010519491231002X"] * n,
            "owner_phone": phones,
            "occupant_name": ["李四"] * n,
            "occupant_id_number": ["11010519491231002X"] * n,
            "address": ["世纪大道100号"] * n,
            "notes": [f"租客电话{p}" if i % 4 == 0 else "无" for i, p in enumerate(phones)],
        }
    )


@pytest.fixture(scope="module")
def units() -> pa.Table:
    return _units()


@pytest.fixture(scope="module")
def release(units):
    return desensitize(units, UNIT_POLICY, KEY)


def test_direct_identifiers_are_dropped_and_reported(release):
    released, report = release
    assert not set(DIRECT_IDENTIFIERS) & set(released.column_names)
    assert report["dropped"] == {column: "direct identifier" for column in DIRECT_IDENTIFIERS} | {
        "building_id": "join key that would place a unit in its building, finer than its grid cell"}


def test_free_text_is_scrubbed_and_counted(units, release):
    released, report = release
    assert not any("138" in note for note in released.column("notes").to_pylist())
    assert report["pii_redacted"]["counts"]["phone"] == units.num_rows // 4


def test_pseudonyms_are_keyed_hmac_sha256():
    values = ["B00001", "浦东-7", ""]
    for key in (KEY, b"k" * 100):  # keys longer than a SHA-256 block are hashed first
        expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:16] for v in values]
        assert pseudonymize(pa.array(values), key).to_pylist() == expected


def test_pseudonyms_are_stable_under_one_key_and_keep_nulls():
    values = pa.array(["B1", None, "B2", "B1"])
    first, again = pseudonymize(values, KEY), pseudonymize(values, KEY)
    assert first.equals(again)
    assert first[0] == first[3] and first[0] != first[2] and first[1].as_py() is None


def test_joins_still_work_inside_a_release(units):
    """Rooms and their buildings, released separately under one key, join on the pseudonym
    exactly as they did on the building_id."""
    buildings = pa.table({"building_id": sorted(set(units.column("building_id").to_pylist()))})
    buildings = buildings.append_column("storey_count", pa.array(range(buildings.num_rows)))
    rooms = units.select(["unit_id", "building_id"])
    raw = rooms.join(buildings, "building_id").select(["unit_id", "storey_count"]).sort_by("unit_id")

    def released(table):
        index = table.column_names.index("building_id")
        return table.set_column(index, "building_id", pseudonymize(table.column("building_id"), KEY))

    joined = released(rooms).join(released(buildings), "building_id")
    assert joined.select(["unit_id", "storey_count"]).sort_by("unit_id").equals(raw)


def test_two_releases_cannot_be_linked_by_their_join_keys(units, release):
    first, _ = release
    second, _ = desensitize(units, UNIT_POLICY, OTHER_KEY)
    again, _ = desensitize(units, UNIT_POLICY, KEY)
    assert again.equals(first)  # deterministic given (table, policy, key)
    for column in UNIT_POLICY.pseudonymize:
        assert not set(first.column(column).to_pylist()) & set(second.column(column).to_pylist())


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="key"):
        pseudonymize(pa.array(["B1"]), b"short")


def test_k_anonymity_and_l_diversity_hold_after_desensitize(units, release):
    released, report = release
    classes = released.to_pandas().groupby(list(UNIT_POLICY.quasi_identifiers), dropna=False)
    assert classes.size().min() >= UNIT_POLICY.k
    assert classes["monthly_rent"].nunique(dropna=False).min() >= UNIT_POLICY.l
    stats = report["k_anonymity"]
    assert stats["k_reached"] == classes.size().min() and stats["l_reached"] >= UNIT_POLICY.l
    assert stats["suppressed"] == units.num_rows - released.num_rows == report["rows_in"] - report["rows_out"]
    assert stats["suppressed"] == sum(stats["reasons"].values()) > 0
    assert stats["classes"] == classes.ngroups


def test_generalization_makes_suppression_the_last_resort(units, release):
    _, raw = k_anonymize(units, UNIT_POLICY.quasi_identifiers, UNIT_POLICY.k)
    assert raw.suppressed == units.num_rows  # raw areas single out every room
    assert release[1]["k_anonymity"]["suppressed"] < units.num_rows // 2


def test_suppression_removes_small_classes_and_classes_without_enough_sensitive_values():
    table = pa.table(
        {
            "district": ["甲"] * 5 + ["乙"] * 5 + ["丙"] * 2,
            "monthly_rent": [3000.0] * 5 + [1000.0, 2000.0, 3000.0, 1000.0, 2000.0] + [5000.0, 6000.0],
        }
    )
    released, result = k_anonymize(table, ["district"], 3, sensitive=["monthly_rent"], l=2)
    assert released.column("district").to_pylist() == ["乙"] * 5
    assert result.suppressed == 7 and result.classes == 1
    assert result.reasons == {
        "equivalence class smaller than k=3": 2,
        "fewer than l=2 distinct values of monthly_rent": 5,
    }
    assert (result.k_reached, result.l_reached) == (5, 3)


def test_generalization_rules():
    area = pa.array([0.0, 9.99, 10.0, 63.2, None, 512.0])
    assert generalize(area, {"bin": 10, "top": 200}).to_pylist() == [0.0, 0.0, 10.0, 60.0, None, 200.0]
    year = pa.array([1949, 1950, 2023], pa.int16())
    binned = generalize(year, {"bin": 10})
    assert binned.type == pa.int16() and binned.to_pylist() == [1940, 1950, 2020]
    floor = pa.array([-7, -1, 1, 3, 4, 40], pa.int16())
    assert generalize(floor, {"bands": [-5, 1, 4, 31]}).to_pylist() == [-5, -5, 1, 1, 4, 31]


def test_reidentification_attack_succeeds_at_most_one_time_in_k(units, release):
    """The attacker knows a target's district, neighbourhood, floor, area and build year and
    the public policy, and links them to the released rows."""
    released, _ = release
    known = ["district", "neighbourhood", "floor", "area_m2", "build_year"]
    raw = units.select(["unit_id", *known]).to_pandas()
    targets = raw.sample(n=1000, random_state=1)

    candidates_before = targets.join(raw.groupby(known).size().rename("n"), on=known)["n"]
    assert (candidates_before == 1).all()  # before desensitize every target is singled out

    view = targets.copy()
    for column in known:
        if column in UNIT_POLICY.generalize:
            view[column] = generalize(pa.array(targets[column]), UNIT_POLICY.generalize[column]).to_numpy()
    released_rows = released.to_pandas()
    groups = released_rows.groupby(known)
    view = view.join(groups.size().rename("n"), on=known)
    view = view.join(groups["monthly_rent"].nunique().rename("rents"), on=known)
    released_ids = set(released.column("unit_id").to_pylist())
    view["present"] = [p in released_ids for p in pseudonymize(pa.array(targets["unit_id"]), KEY).to_pylist()]
    present = view[view["present"]]
    assert len(present) > len(targets) // 2
    assert (present["n"] >= UNIT_POLICY.k).all()
    assert (1 / present["n"]).max() <= 1 / UNIT_POLICY.k  # the attacker's best chance per target
    assert (present["rents"] >= UNIT_POLICY.l).all()  # nor can they read off the rent


def test_policy_round_trips_through_plain_data():
    data = UNIT_POLICY.to_dict()
    assert DesensitizePolicy.from_dict(data) == UNIT_POLICY
    assert DesensitizePolicy.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    "field, value",
    [
        ("k", 1),
        ("k", "5"),
        ("l", 0),
        ("drop", "owner_name"),
        ("quasi_identifiers", ["district", 3]),
        ("generalize", {"area_m2": {"bin": 0}}),
        ("generalize", {"area_m2": {"width": 10}}),
        ("generalize", {"floor": {"bands": [4, 1]}}),
        ("sensitive", ["district"]),  # also a quasi-identifier
        ("pseudonymize", ["owner_name"]),  # also dropped
    ],
)
def test_bad_policy_is_refused_naming_the_field(field, value):
    data = UNIT_POLICY.to_dict() | {field: value}
    with pytest.raises(ValueError, match=f"'{field}'"):
        DesensitizePolicy.from_dict(data)


def test_unknown_policy_field_is_refused_by_name():
    with pytest.raises(ValueError, match="'k_min'"):
        DesensitizePolicy.from_dict(UNIT_POLICY.to_dict() | {"k_min": 5})


@pytest.mark.parametrize(
    "field, column",
    [("drop", "owner_email"), ("quasi_identifiers", "postcode"), ("generalize", "storeys")],
)
def test_policy_naming_a_column_the_table_lacks_is_refused_by_name(units, field, column):
    data = UNIT_POLICY.to_dict()
    data[field] = data[field] | {column: {"bin": 5}} if field == "generalize" else data[field] + [column]
    with pytest.raises(ValueError, match=f"'{field}'.*'{column}'"):
        desensitize(units, DesensitizePolicy.from_dict(data), KEY)


def test_generalizing_a_text_column_is_refused_by_name(units):
    policy = DesensitizePolicy.from_dict(UNIT_POLICY.to_dict() | {"generalize": {"district": {"bin": 1}}})
    with pytest.raises(ValueError, match="'district'"):
        desensitize(units, policy, KEY)
