"""A corpus version on disk: one Parquet file of UNIT_SCHEMA rows with their grid codes,
written once, hashed, and read back in batches so that memory does not grow with the corpus."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from . import grid
from .schema import UNIT_SCHEMA

BATCH_ROWS = 100_000
# The catalogue's coarse index of a corpus: grid cells about 0.75 km east-west and 0.87 km
# north-south near Shanghai, and 1 km tall (one layer from -341 m to +683 m), so that a
# central district touches tens of cells and Pudong a few thousand.
COVER_LEVEL = 16


def with_grid_codes(table: pa.Table) -> pa.Table:
    """Give every unit the smallest 3D grid cell that holds it (adaptive level)."""
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    bounds = shapely.bounds(geoms)
    codes = grid.adaptive_codes(
        bounds[:, 0], bounds[:, 1], table.column("z_min").to_numpy(),
        bounds[:, 2], bounds[:, 3], table.column("z_max").to_numpy(),
    )
    index = table.schema.get_field_index("grid_code")
    return table.set_column(index, "grid_code", pa.array(codes, pa.string()))


@dataclass
class CorpusSummary:
    units: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    extent: list[float] = field(default_factory=lambda: [np.inf, np.inf, -np.inf, -np.inf])
    sha256: str = ""
    cells: set[str] = field(default_factory=set)  # at COVER_LEVEL

    def add(self, table: pa.Table) -> None:
        self.units += table.num_rows
        counts = pc.value_counts(table.column("kind")).to_pylist()
        for item in counts:
            self.kinds[item["values"]] = self.kinds.get(item["values"], 0) + item["counts"]
        if table.num_rows == 0:
            return
        b = shapely.bounds(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
        lo, hi = b[:, :2].min(axis=0), b[:, 2:].max(axis=0)
        self.extent = [min(self.extent[0], lo[0]), min(self.extent[1], lo[1]),
                       max(self.extent[2], hi[0]), max(self.extent[3], hi[1])]
        self.cells.update(grid.box_cells(
            b[:, 0], b[:, 1], table.column("z_min").to_numpy(), b[:, 2], b[:, 3], table.column("z_max").to_numpy(),
            COVER_LEVEL,
        ).tolist())


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_corpus(batches: Iterable[pa.Table], path: Path) -> CorpusSummary:
    """Write batches (grid codes assigned here) to `path` atomically and summarise them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    summary = CorpusSummary()
    seen_ids: set[str] = set()
    try:
        with pq.ParquetWriter(partial, UNIT_SCHEMA, compression="zstd") as writer:
            for batch in batches:
                batch = with_grid_codes(batch.select(UNIT_SCHEMA.names).cast(UNIT_SCHEMA))
                ids = batch.column("unit_id").to_pylist()
                # Batches are validated one by one; ids must also be unique across them.
                duplicate = seen_ids.intersection(ids)
                if duplicate:
                    raise ValueError(f"unit_id: {sorted(duplicate)[0]!r} appears in two batches")
                seen_ids.update(ids)
                summary.add(batch)
                writer.write_table(batch, row_group_size=BATCH_ROWS)
        summary.sha256 = file_sha256(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def schema_fields(path: Path) -> list[dict[str, str]]:
    """The stored file's columns and their Arrow types, read from its footer alone."""
    return [{"name": f.name, "type": str(f.type)} for f in pq.read_schema(path)]


def iter_corpus(
    path: Path, *, columns: list[str] | None = None, limit: int | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, batch) over a corpus version, up to `limit` rows."""
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        if limit is not None and start >= limit:
            return
        table = pa.Table.from_batches([batch])
        if limit is not None:
            table = table.slice(0, limit - start)
        yield start, table
        start += table.num_rows
