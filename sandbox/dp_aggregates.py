"""Differentially private aggregates of a code-to-data job's per-record contributions, with
OpenDP's measurements.

Where the dataset's sandbox policy asks for DP outputs, the job's code does not write its
results: it maps each private record to one **contribution** row (`outputs/contributions.csv`
or `.parquet`): the record's `unit_id`, the group it falls in (the `by` columns) and what it
adds (the `values` columns). The platform, not the job, then:

1. checks the rows: every `unit_id` is one of the private rows' and appears once, so adding or
   removing a record changes one group's count by 1 and its sums by at most the clipping bound;
2. clips each value to the bounds declared with the job (before it saw any data);
3. releases the groups and their counts with OpenDP's Laplace threshold mechanism
   (`make_count_by` then `make_laplace_threshold`: Laplace noise on each count, and a group
   whose noisy count is under the threshold is dropped; that is where δ goes, and why a group
   only a few records fall in is never revealed);
4. releases each value's per-group sum over the released groups with OpenDP's Laplace
   mechanism (L1 sensitivity max(|lo|, |hi|)), and the mean as sum / count (post-processing).

ε is split evenly between the counts and each value column (basic composition) and δ goes to
the threshold; the ε reported is the sum of OpenDP's privacy maps, never above the target.

What it assumes: that a record's contribution depends on that record alone. Code that folds
other records into a contribution (a mean over all rows, a rank) breaks the sensitivity
bound. The steward reads the code for that, and the job runner also runs the code on a random
half of the rows and refuses the output when any record's contribution differs (`row_local`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ID = "unit_id"
SEPARATOR = "\x1f"
MAX_BY = 4
MAX_VALUES = 8
CONTRIBUTION_FILES = ("contributions.csv", "contributions.parquet")


@dataclass
class AggregateSpec:
    by: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # column -> [lo, hi]

    @classmethod
    def from_dict(cls, data) -> AggregateSpec:
        if not isinstance(data, dict) or set(data) - {"by", "values"}:
            raise ValueError("aggregate: an object with 'by' (group columns) and 'values' ({column: [lo, hi]})")
        by, values = data.get("by", []), data.get("values", {})
        if not isinstance(by, list) or not all(isinstance(c, str) and c for c in by) or len(by) > MAX_BY:
            raise ValueError(f"aggregate.by: a list of at most {MAX_BY} column names")
        if not isinstance(values, dict) or len(values) > MAX_VALUES:
            raise ValueError(f"aggregate.values: an object of at most {MAX_VALUES} columns, each [lo, hi]")
        for name, bounds in values.items():
            ok = isinstance(bounds, list) and len(bounds) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
            if not ok or bounds[0] >= bounds[1]:
                raise ValueError(f"aggregate.values.{name}: bounds [lo, hi] with lo < hi, got {bounds!r}")
        clash = ({ID} | set(by)) & set(values) or ({ID} & set(by))
        if clash or len(set(by)) != len(by):
            raise ValueError(f"aggregate: a column is named twice ({', '.join(sorted(clash)) or 'in by'})")
        return cls(by=list(by), values={k: [float(v[0]), float(v[1])] for k, v in values.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def columns(self) -> list[str]:
        return [ID, *self.by, *self.values]


def read_contributions(outputs: Path) -> pa.Table:
    found = [outputs / name for name in CONTRIBUTION_FILES if (outputs / name).is_file()]
    if len(found) != 1:
        raise ValueError(f"outputs: a DP job writes exactly one of {', '.join(CONTRIBUTION_FILES)} "
                         f"(found {', '.join(p.name for p in found) or 'neither'})")
    path = found[0]
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        # never the parser's message: it quotes the line it choked on, a private row perhaps
        raise ValueError(f"{path.name}: not readable as a table") from None


def check_contributions(table: pa.Table, spec: AggregateSpec, private_ids: pa.Array) -> pa.Table:
    """The contributions, cast and cut to the spec's columns; ValueError naming what is wrong,
    in fixed words (the applicant reads it: no count or value the job chose)."""
    missing = [c for c in spec.columns if c not in table.column_names]
    if missing:
        raise ValueError(f"contributions: missing columns {', '.join(missing)} (the job declared {spec.columns})")
    table = table.select(spec.columns)
    ids = table[ID].cast(pa.string())
    if ids.null_count:
        raise ValueError(f"contributions.{ID}: some rows have no unit_id")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        raise ValueError(f"contributions.{ID}: a record contributes at most once; some unit_id appears twice")
    unknown = pc.sum(pc.invert(pc.is_in(ids, value_set=private_ids.cast(pa.string())))).as_py() or 0
    if unknown:
        raise ValueError(f"contributions.{ID}: some rows name no private record")
    columns = {ID: ids}
    for name in spec.by:
        columns[name] = pc.fill_null(table[name].cast(pa.string()), "")
    for name in spec.values:
        try:
            columns[name] = table[name].cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"contributions.{name}: values must be numbers") from None
    return pa.table(columns)


ROW_LOCAL_OK = "every record contributed the same when the code ran on half of the rows"
ROW_LOCAL_FAILED = ("records contributed differently when the code ran on half of the rows: a contribution must "
                    "depend on its own record only")


def row_local(full: pa.Table, half: pa.Table, spec: AggregateSpec) -> tuple[bool, str]:
    """Whether every record of `half` contributed the same as in `full` (the code run on a
    subset of the rows): differences mean a contribution depends on other records. Returns
    it and what was counted (for the data owner's stewards: the counts are the job's)."""
    joined = half.join(full, ID, join_type="left outer", right_suffix="_full")
    if joined.num_rows != half.num_rows:
        return False, "contributions on a subset of the rows do not match one-to-one"
    differing = 0
    for name in [*spec.by, *spec.values]:
        a, b = joined[name], joined[f"{name}_full"]
        same = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        differing = max(differing, pc.sum(pc.invert(pc.or_(same, both_null))).as_py() or 0)
    missing = len(set(half[ID].to_pylist()) - set(full[ID].to_pylist()))
    if differing or missing:
        return False, f"{differing + missing} of {half.num_rows} records contributed differently"
    return True, f"{half.num_rows} records contributed the same on half of the rows"


def release(table: pa.Table, spec: AggregateSpec, *, epsilon: float, delta: float) -> tuple[pa.Table, dict]:
    """Noisy groups, counts, sums and means of checked contributions, and the privacy spent."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    parts = 1 + len(spec.values)
    eps_part = epsilon / parts
    keys = _keys(table, spec.by)
    count_by = dp.t.make_count_by(dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance(), TV=int)

    def counts_with(threshold):
        return count_by >> dp.m.then_laplace_threshold(scale=1.0 / eps_part, threshold=threshold)

    threshold = dp.binary_search_param(counts_with, d_in=1, d_out=(eps_part, delta), T=int)
    counts_mechanism = counts_with(threshold)
    spent_eps, spent_delta = counts_mechanism.map(1)
    released = counts_mechanism(keys.to_pylist())
    groups = sorted(released)
    out = {name: [g.split(SEPARATOR)[i] if spec.by else "" for g in groups] for i, name in enumerate(spec.by)}
    counts = np.array([max(int(released[g]), 0) for g in groups], dtype=np.int64)
    out["count"] = counts
    measures = {"count": {"mechanism": "Laplace threshold (OpenDP make_count_by >> make_laplace_threshold)",
                          "scale": 1.0 / eps_part, "threshold": int(threshold), "epsilon": float(spent_eps),
                          "delta": float(spent_delta)}}
    index = {g: i for i, g in enumerate(groups)}
    position = np.array([index.get(k, -1) for k in keys.to_pylist()], dtype=np.int64)
    kept = position >= 0
    for name, (lo, hi) in spec.values.items():
        sensitivity = max(abs(lo), abs(hi))
        values = np.clip(np.nan_to_num(table[name].to_numpy(zero_copy_only=False), nan=0.0), lo, hi)
        sums = np.bincount(position[kept], weights=values[kept], minlength=len(groups)).astype(float)
        laplace = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=float, nan=False), size=len(groups)),
                                    dp.l1_distance(T=float), scale=sensitivity / eps_part)
        noisy = np.array(laplace(sums.tolist()) if len(groups) else [], dtype=float)
        eps_used = float(laplace.map(sensitivity))
        spent_eps += eps_used
        out[f"{name}_sum"] = noisy
        out[f"{name}_mean"] = np.where(counts > 0, noisy / np.maximum(counts, 1), np.nan)
        measures[name] = {"mechanism": "Laplace (OpenDP make_laplace)", "bounds": [lo, hi],
                          "scale": sensitivity / eps_part, "epsilon": eps_used}
    privacy = {
        "mechanism": "DP aggregates of per-record contributions (OpenDP): Laplace threshold counts, Laplace sums",
        "epsilon": float(spent_eps), "delta": float(spent_delta), "target_epsilon": epsilon, "target_delta": delta,
        "composition": "basic: ε split evenly over counts and each value column", "measures": measures,
        "groups_released": len(groups), "spec": spec.to_dict(),
    }
    return pa.table(out), privacy


def _keys(table: pa.Table, by: list[str]) -> pa.Array:
    if not by:
        return pa.array([""] * table.num_rows, pa.string())
    if len(by) == 1:
        return table[by[0]].combine_chunks()
    return pc.binary_join_element_wise(*[table[c] for c in by], SEPARATOR).combine_chunks()
