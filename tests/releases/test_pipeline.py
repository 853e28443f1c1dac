"""The whole release pipeline on a generated district: what a startup receives is
desensitized, declassified, shifted and light, the report says so, and the run is
deterministic and all-or-nothing."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

pytestmark = pytest.mark.release

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from corpora.generator import generate_district
    from corpora.store import write_corpus

    path = tmp_path_factory.mktemp("corpus") / "district.parquet"
    write_corpus(generate_district(seed=11, rooms=6000, chunk_rooms=2000), path)
    return path


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    from releases.pipeline import ReleaseSpec, run_release

    assert pq.ParquetFile(corpus).metadata.num_rows > 6000  # several kinds beside the rooms
    out = tmp_path_factory.mktemp("release") / "r1"
    report = run_release(corpus, ReleaseSpec(outputs=("geoparquet", "geojson")), KEY, out)
    return out, report, pq.read_table(out / report["outputs"]["geoparquet"]["path"])


def test_direct_identifiers_and_pii_never_leave(built, corpus):
    out, report, released = built
    for column in ("owner_name", "owner_id_number", "owner_phone", "occupant_name", "occupant_id_number", "address"):
        assert column not in released.column_names
    raw = pq.read_table(corpus, columns=["owner_id_number", "owner_phone", "notes"])
    ids = set(raw.column("owner_id_number").drop_null().to_pylist())
    phones = set(raw.column("owner_phone").drop_null().to_pylist())
    text = (out / report["outputs"]["geojson"]["path"]).read_text()
    assert not any(i in text for i in list(ids)[:500]) and not any(p in text for p in list(phones)[:500])
    notes = " ".join(released.column("notes").drop_null().to_pylist())
    assert "[电话]" in notes or "[身份证]" in notes  # the PII that was in the notes is redacted
    assert sum(report["desensitized"]["pii_redacted"].values()) > 0


def test_k_anonymity_and_l_diversity_hold_in_the_output(built):
    _, report, released = built
    from releases.desensitize import UNIT_POLICY

    frame = released.select(list(UNIT_POLICY.quasi_identifiers) + ["monthly_rent"]).to_pandas()
    groups = frame.groupby(list(UNIT_POLICY.quasi_identifiers), dropna=False)
    assert groups.size().min() >= UNIT_POLICY.k
    assert groups["monthly_rent"].nunique(dropna=False).min() >= UNIT_POLICY.l
    kanon = report["desensitized"]["k_anonymity"]
    assert kanon["k_reached"] >= UNIT_POLICY.k and kanon["suppressed"] > 0


def test_join_keys_are_pseudonyms_unlinkable_across_release_keys(built, corpus, tmp_path):
    from releases.pipeline import ReleaseSpec, run_release

    _, _, released = built
    raw_ids = set(pq.read_table(corpus, columns=["unit_id"]).column("unit_id").to_pylist())
    assert not raw_ids & set(released.column("unit_id").to_pylist())
    other = run_release(corpus, ReleaseSpec(), bytes(reversed(KEY)), tmp_path / "r2")
    other_ids = pq.read_table(tmp_path / "r2" / other["outputs"]["geoparquet"]["path"]).column("unit_id")
    assert not set(other_ids.to_pylist()) & set(released.column("unit_id").to_pylist())


def test_sensitive_facilities_and_their_zones_are_withheld(built, corpus):
    _, report, released = built
    raw = pq.read_table(corpus, columns=["kind", "sensitive_category", "geometry"])
    assert "facility" not in set(released.column("kind").to_pylist())
    assert set(released.column("sensitive_category").drop_null().to_pylist()) <= {""}
    removed = report["declassified"]["removed"]
    assert sum(removed["category"].values()) == sum(1 for c in raw.column("sensitive_category").to_pylist() if c)
    assert report["declassified"]["zones"] > 0 and sum(removed["zone"].values()) > 0


def test_heights_are_coarsened_and_coordinates_shifted_and_quantized(built, corpus):
    _, report, released = built
    z = np.concatenate([released.column("z_min").to_numpy(), released.column("z_max").to_numpy()])
    steps = np.where(z >= 0, z / 3.0, z / 1.0)  # heights to 3 m, depths to 1 m
    assert np.abs(steps - np.round(steps)).max() < 1e-9
    measured = report["shift"]["measured"]
    assert 10 < measured["offset_m"]["p50"] <= 100  # moved, within the policy's bound
    landmarks = report["attacks"]["landmarks"]["residual_m"]  # measured on the release's own layout
    assert landmarks["20"] < landmarks["1"]
    from releases.columns import grid_step_deg

    step = grid_step_deg(0.5)
    coords = shapely.get_coordinates(shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False)))
    assert np.abs(coords / step - np.round(coords / step)).max() < 1e-6  # on the fingerprint grid


def test_report_carries_hashes_of_input_policy_code_and_outputs(built, corpus):
    from corpora.store import file_sha256
    from releases.pipeline import ReleaseSpec, code_version

    out, report, _ = built
    assert report["hashes"]["input"] == file_sha256(corpus)
    assert report["hashes"]["policy"] == ReleaseSpec(outputs=("geoparquet", "geojson")).sha256()
    assert report["hashes"]["code"] == code_version()
    for fmt, output in report["outputs"].items():
        assert file_sha256(out / output["path"]) == output["sha256"] == report["hashes"]["outputs"][fmt]
    assert json.loads((out / "report.json").read_text())["hashes"] == report["hashes"]


def test_release_is_deterministic_given_input_policy_and_key(built, corpus, tmp_path):
    from releases.pipeline import ReleaseSpec, run_release

    _, report, _ = built
    again = run_release(corpus, ReleaseSpec(outputs=("geoparquet", "geojson")), KEY, tmp_path / "again")
    assert again["hashes"]["outputs"] == report["hashes"]["outputs"]


def test_an_interrupted_release_leaves_nothing_behind(corpus, tmp_path):
    from releases.pipeline import ReleaseSpec, run_release

    def crash(percent, stage):
        if percent > 50:
            raise KeyboardInterrupt("worker killed")

    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        run_release(corpus, ReleaseSpec(), KEY, out, progress=crash)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_policy_that_suppresses_everything_says_so(corpus, tmp_path):
    from releases.desensitize import UNIT_POLICY
    from releases.pipeline import NothingToRelease, ReleaseSpec, run_release

    # max_suppressed 1 lets the policy suppress everything, which the pipeline then says.
    strict = ReleaseSpec(desensitize=UNIT_POLICY.__class__.from_dict({**UNIT_POLICY.to_dict(), "k": 100_000,
                                                                      "max_suppressed": 1.0}))
    with pytest.raises(NothingToRelease, match="k-anonymity suppressed"):
        run_release(corpus, strict, KEY, tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"data_class": "secret"}, "data_class"),
        ({"shift": {"mode": "teleport"}}, "shift.mode"),
        ({"shift": {"mode": "none"}}, "shift.mode"),
        ({"shift": {"mode": "smooth", "max_offset_m": -1}}, "shift"),
        ({"outputs": ["shapefile"]}, "outputs"),
        ({"desensitize": {"k": 0}}, "desensitize"),
        ({"lightweight": {"level_of_detail": "city"}}, "lightweight"),
        ({"colour": "red"}, "spec"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(spec, field):
    from releases.pipeline import ReleaseSpec

    with pytest.raises(ValueError) as exc:
        ReleaseSpec.from_dict(spec)
    assert str(exc.value).startswith(field), str(exc.value)
