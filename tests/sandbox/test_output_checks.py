"""The automatic checks on a code job's held output flag what carries more than it shows:
rows encoded as base64 of a compressed stream (what passed review before), hex and digit runs,
files that do not compress like tables, rows written with their exact values, and the details
an applicant reads name no file and give no figure the job chose."""
from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from sandbox import checks

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def private():
    from corpora.generator import district_units

    table = district_units(seed=5, rooms=3000)
    return table.filter(pa.compute.equal(table["kind"], "room"))


def held(tmp_path, files: dict[str, str | bytes]):
    folder = tmp_path / "output"
    folder.mkdir(parents=True)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def run_checks(folder, private) -> dict[str, dict]:
    columns = [c for c in (*checks.IDENTIFIER_COLUMNS, *checks.VERBATIM_COLUMNS) if c in private.column_names]
    found = checks.code_output_checks(folder, private.select(columns), max_bytes=1_000_000, min_cell_count=10)
    return {c["name"]: c for c in found}


def csv_of(table) -> str:
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue().decode()


def test_rows_as_base64_of_zlib_are_flagged_and_block_release(tmp_path, private):
    rows = csv_of(private.select(["unit_id", "area_m2", "monthly_rent", "floor", "build_year"])).encode()
    assert private.num_rows >= 3000
    blob = base64.b64encode(zlib.compress(rows, 9)).decode()
    found = run_checks(held(tmp_path, {"model_summary.txt": blob}), private)
    assert not found["encoded"]["passed"] and not found["compressibility"]["passed"]
    assert found["encoded"]["blocking"] and found["compressibility"]["blocking"]
    assert found["identifiers"]["passed"] and found["verbatim_rows"]["passed"]  # the old checks saw nothing
    # What the applicant reads names no file and no figure; the steward's finding does.
    public = json.dumps(checks.public(list(found.values())))
    assert "model_summary" not in public and "finding" not in public
    assert "model_summary.txt" in found["encoded"]["finding"]


def test_hex_digit_runs_and_too_much_information_are_flagged(tmp_path, private):
    secret = zlib.compress(csv_of(private.select(["unit_id", "area_m2", "monthly_rent", "floor", "build_year"]))
                           .encode(), 9)
    found = run_checks(held(tmp_path, {"a.txt": secret[:2000].hex(), "b.csv": "id,n\nx," + "7" * 30 + "\n"}),
                       private)
    assert not found["encoded"]["passed"] and "2 files" not in found["encoded"]["detail"]
    assert "a.txt: 1 hex runs" in found["encoded"]["finding"] and "b.csv: 1 digit runs" in found["encoded"]["finding"]
    decimal = ",".join(str(b) for b in secret)  # looks like numbers, compresses like numbers
    found = run_checks(held(tmp_path / "x", {"numbers.csv": decimal}), private)
    assert found["encoded"]["passed"] and found["compressibility"]["passed"]
    assert not found["information"]["passed"]  # but it holds more than an output may


def test_a_row_written_with_its_exact_values_is_flagged(tmp_path, private):
    row = private.slice(7, 1).to_pylist()[0]
    lines = f"label,a,b\nroom,{row['area_m2']:.2f},{row['build_year']}\n"
    found = run_checks(held(tmp_path, {"rooms.csv": lines}), private)
    assert not found["verbatim_rows"]["passed"] and "rooms.csv: 1 rows" in found["verbatim_rows"]["finding"]
    assert found["identifiers"]["passed"]


def test_ordinary_aggregates_pass_every_check(tmp_path, private):
    rng = np.random.default_rng(3)
    groups = pa.table({"neighbourhood": [f"街道{i}" for i in range(120)], "count": rng.integers(20, 400, 120),
                       "monthly_rent_sum": rng.normal(4e5, 1e5, 120), "monthly_rent_mean": rng.normal(4000, 800, 120)})
    notes = "按街道汇总的租金统计，每组至少二十间房。\n" * 40
    found = run_checks(held(tmp_path, {"aggregates.csv": csv_of(groups), "README.md": notes}), private)
    assert all(c["passed"] for c in found.values()), [c for c in found.values() if not c["passed"]]


def test_the_predictions_and_contributions_readers_quote_nothing_of_the_file(tmp_path, private):
    """What the scorer and the DP reader say about a bad file is fixed: never its header, a line
    of it or a count it chose (a submission's reason goes straight to its team)."""
    from sandbox import challenge, dp_aggregates

    rows = private.slice(0, 40).to_pylist()
    part = private.slice(0, 50)
    secret = [r["unit_id"] for r in rows] + [repr(r["area_m2"]) for r in rows]
    header = ",".join(f"{r['unit_id']} {r['area_m2']!r}" for r in rows)
    cases = {
        "header": (header + "\n" + ",".join("1" for _ in rows) + "\n", "needs the columns unit_id and prediction"),
        "malformed": ("unit_id,prediction\n" + "\n".join(f"{r['unit_id']},{r['area_m2']!r},x" for r in rows)
                      + '\n"unclosed\n', "not a CSV table"),
        "count": ("unit_id,prediction\n" + "".join(f"{r['unit_id']},office\n" for r in rows[:7]),
                  "exactly one row for each room"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(content)
        with pytest.raises(ValueError) as caught:
            challenge.read_predictions(path, part)
        assert expected in str(caught.value) and not [v for v in secret if v in str(caught.value)], name
    (tmp_path / "dp").mkdir()
    (tmp_path / "dp" / "contributions.csv").write_text(cases["malformed"][0])
    with pytest.raises(ValueError) as caught:
        dp_aggregates.read_contributions(tmp_path / "dp")
    assert str(caught.value) == "contributions.csv: not readable as a table"
