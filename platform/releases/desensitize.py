"""Release step 1, desensitize: drop direct identifiers, pseudonymize join keys, scrub free
text, generalize quasi-identifiers, then suppress the records that are still too rare
(k-anonymity, with l-diversity on sensitive attributes).

Plain Python on pyarrow Tables, deterministic given (table, policy, key). Generalization
comes before suppression, so suppression is the last resort and the report says how much
of it there was.

k_anonymize here covers the attribute columns named as quasi-identifiers only. Anyone knows a
target's building and floor, so a release also treats location and height as
quasi-identifiers: the policy's `location` field says how (releases.location), and the
pipeline finds the equivalence classes over (kind, height band, quasi-identifiers, grid
cell) in its first pass over the whole corpus.
"""
from __future__ import annotations

import binascii
import copy
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from releases.declassify import known_fields
from releases.pii import PLACEHOLDERS, Gazetteer, Scrubber

PSEUDONYM_HEX = 16  # 64 bits: a collision among a million keys has odds below 1 in 10^7
MIN_KEY_BYTES = 16

_RULE_KEYS = frozenset({"bin", "top", "bands"})
LOCATION_SHAPES = ("cell", "aggregate", "exact")
LOCATING_KEYS = frozenset({"building_id"})  # join keys that place a unit in its building
MAX_GRID_LEVEL = 24  # cells about 3 m across: finer says nothing a building and floor do not


@dataclass(frozen=True)
class DesensitizePolicy:
    """Which columns are dropped, pseudonymized, scrubbed and generalized, and the k and l
    that suppression enforces over the quasi-identifiers and sensitive columns.

    generalize maps a numeric column to a rule whose result is a lower edge, so the column
    keeps its type: {"bin": w} floors to multiples of w, {"top": t} top-codes at t (before
    binning), {"bands": [e0, e1, ...]} maps to the greatest edge at or below the value
    (values below e0 join the first band).

    location says how units that carry sensitive attributes are located (see
    releases.location): "cell" keeps a row per unit with its geometry generalized to an
    adaptive grid cell, between levels cell_levels = (coarsest, finest), so that k and l hold
    over (kind, height band, quasi-identifiers, cell); "aggregate" keeps exact geometry only
    at floor or building level of detail, with the attributes of at least k rooms
    aggregated; "exact" keeps each unit's exact geometry and is refused when the policy
    declares a sensitive column. A release that would suppress more than max_suppressed of
    its units to reach k and l is refused, naming what to coarsen."""

    drop: tuple[str, ...] = ()
    pseudonymize: tuple[str, ...] = ()
    generalize: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    quasi_identifiers: tuple[str, ...] = ()
    k: int = 2
    sensitive: tuple[str, ...] = ()
    l: int = 1
    free_text: tuple[str, ...] = ()
    location: str = "cell"
    cell_levels: tuple[int, int] = (14, 20)
    max_suppressed: float = 0.2

    def __post_init__(self):
        for name in ("drop", "pseudonymize", "quasi_identifiers", "sensitive", "free_text"):
            object.__setattr__(self, name, _column_names(name, getattr(self, name)))
        object.__setattr__(self, "generalize", _rules(self.generalize))
        if not _is_int(self.k) or self.k < 2:
            raise ValueError(f"policy field 'k' must be an integer >= 2, got {self.k!r}")
        if not _is_int(self.l) or self.l < 1:
            raise ValueError(f"policy field 'l' must be an integer >= 1, got {self.l!r}")
        if self.l > 1 and not self.sensitive:
            raise ValueError("policy field 'l' is above 1 but field 'sensitive' names no column")
        # Each column gets at most one transformation, and a dropped column plays no role.
        _disjoint(self, ("drop", "pseudonymize", "free_text", "generalize"))
        _disjoint(self, ("drop", "quasi_identifiers"))
        _disjoint(self, ("drop", "sensitive"))
        _disjoint(self, ("quasi_identifiers", "sensitive"))
        self._check_location()

    def _check_location(self) -> None:
        if self.location not in LOCATION_SHAPES:
            raise ValueError(f"policy field 'location' must be one of {list(LOCATION_SHAPES)}, got {self.location!r}")
        levels = self.cell_levels
        if (
            not isinstance(levels, (list, tuple))
            or len(levels) != 2
            or not all(_is_int(level) for level in levels)
            or not 1 <= levels[0] <= levels[1] <= MAX_GRID_LEVEL
        ):
            raise ValueError(
                f"policy field 'cell_levels' must be [coarsest, finest] grid levels with "
                f"1 <= coarsest <= finest <= {MAX_GRID_LEVEL}, got {levels!r}"
            )
        object.__setattr__(self, "cell_levels", tuple(levels))
        share = self.max_suppressed
        if not _is_number(share) or not 0 <= share <= 1:
            raise ValueError(f"policy field 'max_suppressed' must be a share from 0 to 1, got {share!r}")
        if self.location == "exact" and self.sensitive:
            raise ValueError(
                f"policy field 'location' is 'exact', which releases each unit's exact geometry with its "
                f"sensitive attributes {list(self.sensitive)}: anyone who knows a target's building and floor "
                "finds its row. Choose 'cell' (a row per unit, located by a grid cell holding at least k "
                "units) or 'aggregate' (exact geometry at floor or building level, attributes aggregated)"
            )
        keys = [column for column in self.pseudonymize if column != "unit_id"]
        if self.location == "cell" and keys:
            raise ValueError(
                f"policy field 'pseudonymize' keeps join key {keys[0]!r}, which groups units finer than "
                "their grid cell and undoes location 'cell': move it to 'drop', or choose location "
                "'aggregate'"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; from_dict(p.to_dict()) == p."""
        return {
            "drop": list(self.drop),
            "pseudonymize": list(self.pseudonymize),
            "generalize": {
                column: {key: list(value) if key == "bands" else value for key, value in rule.items()}
                for column, rule in self.generalize.items()
            },
            "quasi_identifiers": list(self.quasi_identifiers),
            "k": self.k,
            "sensitive": list(self.sensitive),
            "l": self.l,
            "free_text": list(self.free_text),
            "location": self.location,
            "cell_levels": list(self.cell_levels),
            "max_suppressed": self.max_suppressed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesensitizePolicy:
        """A policy from plain data; unknown fields and bad values raise ValueError naming them."""
        return cls(**copy.deepcopy(known_fields(cls, data)))

    def check_columns(self, schema: pa.Schema) -> None:
        """Refuse a policy naming a column the table lacks or cannot transform that way."""
        for name in ("drop", "pseudonymize", "generalize", "quasi_identifiers", "sensitive", "free_text"):
            for column in getattr(self, name):
                if column not in schema.names:
                    raise ValueError(f"policy field {name!r} names column {column!r}, which the table lacks")
        for column in self.free_text:
            kind = schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise ValueError(f"policy field 'free_text' names column {column!r} of type {kind}, not text")
        for column, rule in self.generalize.items():
            kind = schema.field(column).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise ValueError(
                    f"policy field 'generalize' names column {column!r} of type {kind}, not numeric"
                )
            edges = [rule[key] for key in ("bin", "top") if key in rule] + list(rule.get("bands", ()))
            if pa.types.is_integer(kind) and any(float(edge) != int(edge) for edge in edges):
                raise ValueError(
                    f"policy field 'generalize' gives integer column {column!r} a fractional edge"
                )


@dataclass(frozen=True)
class KAnonResult:
    k: int
    l: int
    k_reached: int | None  # smallest equivalence class released; None when nothing is
    l_reached: int | None  # fewest distinct sensitive values in a released class
    suppressed: int  # records removed
    reasons: dict[str, int]  # records removed, by reason
    classes: int  # equivalence classes released


def pseudonymize(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Keyed pseudonyms: the first 16 hex digits of HMAC-SHA256(key, value).

    Equal values get equal pseudonyms under one key, so joins work inside a release; a
    fresh key per release makes two releases unlinkable by these columns. Each distinct
    value is hashed once (join keys such as building_id repeat a lot). Nulls stay null;
    non-string values are hashed by their string form."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a pseudonym key must be at least {MIN_KEY_BYTES} bytes")
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.cast(pa.binary()).to_pylist()
    hexed = binascii.hexlify(_hmac_sha256_prefixes(key, distinct, PSEUDONYM_HEX // 2))
    offsets = np.arange(0, PSEUDONYM_HEX * len(distinct) + 1, PSEUDONYM_HEX, dtype=np.int32)
    pseudonyms = pa.StringArray.from_buffers(len(distinct), pa.py_buffer(offsets), pa.py_buffer(hexed))
    return pseudonyms.take(encoded.indices)


def _hmac_sha256_prefixes(key: bytes, messages: list[bytes], size: int) -> bytes:
    """The first `size` bytes of HMAC-SHA256 (RFC 2104) of each message, concatenated.

    The keyed inner and outer states are built once and copied per message, which is about
    twice as fast as hmac.new per message and dominates the cost of a release."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    new_inner, new_outer = inner.copy, outer.copy
    digests = []
    for message in messages:
        h = new_inner()
        h.update(message)
        o = new_outer()
        o.update(h.digest())
        digests.append(o.digest())
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 32)[:, :size].tobytes()


def generalize(values: pa.Array | pa.ChunkedArray, rule: Mapping[str, Any]) -> pa.Array:
    """Apply one generalization rule (see DesensitizePolicy); nulls stay null."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    x = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    if "top" in rule:
        x = np.minimum(x, rule["top"])
    if "bin" in rule:
        x = np.floor(x / rule["bin"]) * rule["bin"]
    if "bands" in rule:
        edges = np.asarray(rule["bands"], dtype=np.float64)
        x = edges[np.clip(np.searchsorted(edges, x, side="right") - 1, 0, None)]
    nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
    return pa.array(x, mask=nulls).cast(values.type)


def k_anonymize(
    table: pa.Table, quasi_identifiers, k: int, *, sensitive=(), l: int = 1
) -> tuple[pa.Table, KAnonResult]:
    """Remove the records of every equivalence class (records equal on all the
    quasi-identifiers, null counting as a value) with fewer than k members or fewer than l
    distinct values of a sensitive column. Removing whole classes leaves the others as they
    were, so one pass suffices."""
    for column in (*quasi_identifiers, *sensitive):
        if column not in table.column_names:
            raise ValueError(f"column {column!r} is not in the table")
    if not _is_int(k) or k < 1 or not _is_int(l) or l < 1:
        raise ValueError(f"k and l must be integers >= 1, got k={k!r}, l={l!r}")
    classes, n_classes = _group_ids([table.column(c) for c in quasi_identifiers], table.num_rows)
    size = np.bincount(classes, minlength=n_classes)
    keep = size >= k
    reasons = {}
    if not keep.all():
        reasons[f"equivalence class smaller than k={k}"] = int(size[~keep].sum())
    diversity = []
    for column in sensitive:
        distinct = _distinct_per_group(classes, n_classes, table.column(column))
        lacking = keep & (distinct < l)
        if lacking.any():
            reasons[f"fewer than l={l} distinct values of {column}"] = int(size[lacking].sum())
        keep &= ~lacking
        diversity.append(distinct)
    released = table.filter(pa.array(keep[classes]))
    return released, KAnonResult(
        k=k,
        l=l,
        k_reached=int(size[keep].min()) if keep.any() else None,
        l_reached=min(int(d[keep].min()) for d in diversity) if diversity and keep.any() else None,
        suppressed=table.num_rows - released.num_rows,
        reasons=reasons,
        classes=int(keep.sum()),
    )


def transform(
    table: pa.Table, policy: DesensitizePolicy, key: bytes, *, scrubber: Scrubber | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """Drop, pseudonymize, scrub and generalize, row by row: everything but suppression, which
    needs the whole corpus and so is left to the caller (desensitize, or a streaming release
    that counts equivalence classes in a first pass).

    Free text is scrubbed against a gazetteer of the dropped columns' names, phones and ID
    numbers: the scrubber's (a streaming release builds it over the whole corpus), or this
    table's own."""
    policy.check_columns(table.schema)
    rows_in = table.num_rows
    if scrubber is None and policy.free_text:
        scrubber = Scrubber(Gazetteer.from_table(table, policy.drop))
    table = table.drop_columns(list(policy.drop))
    for column in policy.pseudonymize:
        table = _replace(table, column, pseudonymize(table.column(column), key))
    redacted = dict.fromkeys(PLACEHOLDERS, 0)
    for column in policy.free_text:
        scrubbed, counts = scrubber(table.column(column))
        table = _replace(table, column, scrubbed)
        for category, n in counts.items():
            redacted[category] += n
    for column, rule in policy.generalize.items():
        table = _replace(table, column, generalize(table.column(column), rule))
    report = {
        "rows_in": rows_in,
        "dropped": {
            column: "join key that would place a unit in its building, finer than its grid cell"
            if column in LOCATING_KEYS else "direct identifier"
            for column in policy.drop
        },
        "pseudonymized": {column: "join key, keyed HMAC-SHA256" for column in policy.pseudonymize},
        "pii_redacted": {"columns": list(policy.free_text), "counts": redacted,
                         "gazetteer": scrubber.known.summary() if scrubber else None},
        "generalized": policy.to_dict()["generalize"],
    }
    return table, report


def desensitize(table: pa.Table, policy: DesensitizePolicy, key: bytes) -> tuple[pa.Table, dict[str, Any]]:
    """Drop, pseudonymize, scrub, generalize, then k-anonymize; return the release and its report."""
    table, report = transform(table, policy, key)
    table, result = k_anonymize(
        table, policy.quasi_identifiers, policy.k, sensitive=policy.sensitive, l=policy.l
    )
    report["rows_out"] = table.num_rows
    report["k_anonymity"] = dataclasses.asdict(result)
    return table, report


def _group_ids(columns: list, n_rows: int) -> tuple[np.ndarray, int]:
    """Dense ids 0..n-1 of the distinct tuples of the columns, row by row."""
    key, size = np.zeros(n_rows, dtype=np.int64), 1
    for column in columns:
        codes, cardinality = _codes(column)
        if size * cardinality >= 2**62:  # recompact before the mixed-radix key overflows
            key, size = _dense(key)
        key, size = key * cardinality + codes, size * cardinality
    return _dense(key)


def _distinct_per_group(groups: np.ndarray, n_groups: int, column) -> np.ndarray:
    """How many distinct values of the column each group holds."""
    codes, cardinality = _codes(column)
    pairs = np.sort(groups * cardinality + codes)  # np.unique without an inverse is far slower
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]
    return np.bincount(pairs[first] // cardinality, minlength=n_groups)


def _codes(column) -> tuple[np.ndarray, int]:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    return encoded.indices.to_numpy().astype(np.int64), len(encoded.dictionary)


def _dense(key: np.ndarray) -> tuple[np.ndarray, int]:
    distinct, ids = np.unique(key, return_inverse=True)
    return ids, len(distinct)


def _replace(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(column), column, values)


def _column_names(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"policy field {name!r} must be a list of column names, got {value!r}")
    if not all(isinstance(column, str) and column for column in value):
        raise ValueError(f"policy field {name!r} must hold non-empty column names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"policy field {name!r} names a column twice: {value!r}")
    return tuple(value)


def _rules(value) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"policy field 'generalize' must map columns to rules, got {value!r}")
    rules = {}
    for column, rule in value.items():
        where = f"policy field 'generalize' rule for {column!r}"
        if not isinstance(column, str) or not column:
            raise ValueError(f"policy field 'generalize' must be keyed by column names, got {column!r}")
        if not isinstance(rule, Mapping) or not rule or set(rule) - _RULE_KEYS:
            raise ValueError(f"{where} must use some of {sorted(_RULE_KEYS)}, got {rule!r}")
        if "bands" in rule and len(rule) > 1:
            raise ValueError(f"{where} combines 'bands' with {sorted(set(rule) - {'bands'})}; use one")
        if "bin" in rule and not (_is_number(rule["bin"]) and rule["bin"] > 0):
            raise ValueError(f"{where}: 'bin' must be a positive number, got {rule['bin']!r}")
        if "top" in rule and not _is_number(rule["top"]):
            raise ValueError(f"{where}: 'top' must be a number, got {rule['top']!r}")
        if "bands" in rule:
            bands = rule["bands"]
            if (
                not isinstance(bands, (list, tuple))
                or not bands
                or not all(_is_number(edge) for edge in bands)
                or any(a >= b for a, b in zip(bands, bands[1:]))
            ):
                raise ValueError(f"{where}: 'bands' must be increasing numbers, got {bands!r}")
        rules[column] = {key: tuple(v) if key == "bands" else v for key, v in rule.items()}
    return rules


def _disjoint(policy: DesensitizePolicy, names: tuple[str, ...]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        for column in getattr(policy, name):
            if column in seen:
                raise ValueError(f"policy field {name!r} names column {column!r}, as {seen[column]!r} does")
            seen[column] = name


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


# The policy for the unit schema of corpora.schema.
# Rooms keep a row each, located by the grid cell of their class: the building_id pseudonym
# would link them back to their building, so it is dropped.
UNIT_POLICY = DesensitizePolicy(
    drop=("owner_name", "owner_id_number", "owner_phone", "occupant_name", "occupant_id_number", "address",
          "building_id"),
    pseudonymize=("unit_id",),
    free_text=("notes",),
    generalize={
        "area_m2": {"bin": 10, "top": 200},
        "build_year": {"bin": 10},
        "floor": {"bands": [-5, 1, 4, 7, 12, 19, 31]},
        "household_size": {"top": 5},
    },
    quasi_identifiers=("district", "neighbourhood", "floor", "area_m2", "build_year", "household_size"),
    k=5,
    sensitive=("monthly_rent",),
    l=3,
    location="cell",
)
