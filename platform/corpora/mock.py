"""Mock units (合成示例数据): a few synthetic rows in a corpus's schema, for catalogue pages of
data whose real rows may not be shown, and for code written against mock data before it
runs on the private data.

Nothing here reads a corpus. The rows come from the district generator, with two guards so
that a mock never repeats a real row of a generated corpus: its seeds start at 2**32, where
ingest takes none (start_generated_ingest refuses seeds from 2**32 on), and every
identifier and free-text column holds a placeholder of the right shape that the generator
cannot produce (SYN- ids, 张三/李四 names, Beijing 110101 ID numbers, 示例路 addresses).
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .generator import BLOCK_ROOMS, ORIGIN, generate_chunk
from .identity import id_check_digit
from .schema import UNIT_KINDS, UNIT_SCHEMA
from .store import with_grid_codes

MOCK_SEED_BASE = 2**32
# Off the generator's lot lattice around ORIGIN, so mock footprints are not real ones either.
MOCK_ORIGIN = (ORIGIN[0] + 0.01237, ORIGIN[1] - 0.00731)
PLACEHOLDER_NAMES = ("张三", "李四", "王五", "赵六", "钱七", "孙八")
MOCK_ID_REGION = "110101"  # Beijing Dongcheng: the generator only issues Shanghai ID numbers
_MOCK_NOTES = ("示例备注", "示例备注", "联系人张三 13800000000")  # a PII-shaped note, for scrubbers


def mock_seed(name: str) -> int:
    """A stable mock seed for a dataset (by slug), outside the seeds that ingest accepts."""
    return MOCK_SEED_BASE + zlib.crc32(name.encode())


def mock_units(*, seed: int, rows: int = 8, kinds: Iterable[str] | None = None) -> pa.Table:
    """`rows` synthetic units in UNIT_SCHEMA, taken in turn from each of `kinds` (all unit
    kinds by default) that the generated block has."""
    if seed < MOCK_SEED_BASE:
        raise ValueError(f"seed: mock seeds start at {MOCK_SEED_BASE} (2**32), so they never replay an ingest")
    if not 1 <= rows <= 1000:
        raise ValueError("rows: ask for 1 to 1000 mock rows")
    wanted = list(dict.fromkeys(kinds)) if kinds is not None else list(UNIT_KINDS)
    unknown = sorted(set(wanted) - set(UNIT_KINDS))
    if unknown:
        raise ValueError(f"kinds: {unknown[0]!r} is not a unit kind ({', '.join(UNIT_KINDS)})")
    block = generate_chunk(seed=seed, rooms=BLOCK_ROOMS, index=0, chunk_rooms=BLOCK_ROOMS, origin=MOCK_ORIGIN)
    kind = block.column("kind").to_numpy(zero_copy_only=False)
    per_kind = [np.flatnonzero(kind == k)[:rows] for k in wanted]
    # Round robin over the kinds: row j of every kind before row j + 1 of any.
    order = np.concatenate([idx for idx in per_kind if idx.size] or [np.array([], int)])
    rank = np.concatenate([np.arange(idx.size) for idx in per_kind if idx.size] or [np.array([], int)])
    take = order[np.argsort(rank, kind="stable")][:rows]
    return with_grid_codes(_placeholders(block.take(pa.array(take, pa.int64()))))


def _placeholders(table: pa.Table) -> pa.Table:
    n = table.num_rows
    i = np.arange(n)
    unit_ids = table.column("unit_id").to_pylist()
    buildings = table.column("building_id").to_pylist()
    building_alias = {b: f"SYN-B{j + 1:04d}" for j, b in enumerate(dict.fromkeys(b for b in buildings if b))}
    districts = table.column("district").to_pylist()
    names = [PLACEHOLDER_NAMES[k % len(PLACEHOLDER_NAMES)] for k in range(n)]
    columns = {
        "unit_id": [f"SYN-{u[0]}{k + 1:04d}" for k, u in enumerate(unit_ids)],
        "building_id": [building_alias.get(b) for b in buildings],
        "owner_name": _where_present(table, "owner_name", names),
        "occupant_name": _where_present(table, "occupant_name", names[1:] + names[:1]),
        "owner_id_number": _where_present(table, "owner_id_number", _id_numbers(i)),
        "occupant_id_number": _where_present(table, "occupant_id_number", _id_numbers(i + 500)),
        "owner_phone": _where_present(table, "owner_phone", [f"1380000{k + 1:04d}" for k in range(n)]),
        "address": _where_present(table, "address", [f"上海市{d or ''}示例路{k + 1}号" for k, d in enumerate(districts)]),
        "notes": _where_present(table, "notes", [_MOCK_NOTES[k % len(_MOCK_NOTES)] for k in range(n)]),
    }
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, UNIT_SCHEMA.field(name), pa.array(values, UNIT_SCHEMA.field(name).type))
    return table


def _where_present(table: pa.Table, name: str, values: list[str]) -> list[str | None]:
    """The placeholders where the generated column has a value, null where it has none."""
    valid = pc.is_valid(table.column(name)).to_pylist()
    return [v if ok else None for v, ok in zip(values, valid)]


def _id_numbers(serials: np.ndarray) -> list[str]:
    """Resident ID numbers with valid check digits: region 110101, born 1990-01-01."""
    first17 = [f"{MOCK_ID_REGION}19900101{s % 1000:03d}" for s in serials]
    return [body + id_check_digit(body) for body in first17]
