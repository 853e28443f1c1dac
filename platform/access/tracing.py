"""Leak tracing: which licence a leaked file came from, by the release fingerprint detector
(access.fingerprint.detect) run against every release that licences were granted on.

Each release's base is read batch by batch and only the units near the leak are kept, with
their mark groups (found over the whole release, as the packages were made), so memory
follows the leak's footprint, not the release's size. Plain Python: no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import shapely

from access.fingerprint import (
    DEFAULT_ALPHA,
    MATCH_RADIUS_STEPS,
    REGISTRATION_RADIUS_STEPS,
    Detection,
    detect,
    grid_step_deg,
)
from releases.writers import GEOMETRY_COLUMN

from .packages import release_groups

BATCH_ROWS = 50_000
# Base units this many grid steps beyond the leak's bounds may still match it: a leak moved as
# a whole is registered back by up to REGISTRATION_RADIUS_STEPS before units are matched.
MARGIN_STEPS = REGISTRATION_RADIUS_STEPS + 2 * MATCH_RADIUS_STEPS


@dataclass(frozen=True)
class LicensedRelease:
    """One release, the fingerprint keys of its licences (licence id -> key) and the
    release's fingerprint code key (access.fingerprint.code_key)."""

    release_id: int
    source: Path
    precision_m: float
    keys: dict[str, bytes]
    code_key: bytes


@dataclass(frozen=True)
class Trace:
    """The verdict: ``licence_id`` names the recipient's licence, or is None. ``release_id``
    is the release the leak was matched against (the accusing one, else the best match)."""

    licence_id: int | None
    release_id: int | None
    p_value: float | None
    matched_units: int
    per_release: dict[str, dict]


def trace(leaked: np.ndarray, releases: Sequence[LicensedRelease], *, alpha: float = DEFAULT_ALPHA) -> Trace:
    """Run the detector against each release. Bonferroni across releases too: each release's
    test runs at alpha / len(releases), so the chance of accusing anyone innocent anywhere
    stays below alpha."""
    leaked = np.asarray(leaked, dtype=object)
    leaked = leaked[~(shapely.is_missing(leaked) | shapely.is_empty(leaked))]
    per_release: dict[str, dict] = {}
    found: list[tuple[LicensedRelease, Detection]] = []
    if len(leaked) == 0 or not releases:
        return Trace(None, None, None, 0, per_release)
    bounds = shapely.total_bounds(leaked)
    for release in releases:
        base, keys = _base_near(release, bounds)
        if len(base) == 0:
            per_release[str(release.release_id)] = {"matched_units": 0}
            continue
        detection = detect(
            leaked,
            base,
            keys,
            release.keys,
            code_key=release.code_key,
            precision_m=release.precision_m,
            alpha=alpha / len(releases),
        )
        per_release[str(release.release_id)] = detection.to_dict()
        found.append((release, detection))
    if not found:
        return Trace(None, None, None, 0, per_release)
    accusing = [(r, d) for r, d in found if d.recipient is not None]
    release, detection = (
        min(accusing, key=lambda rd: rd[1].p_value)
        if accusing
        else max(found, key=lambda rd: rd[1].matched_units)
    )
    return Trace(
        licence_id=int(detection.recipient) if detection.recipient is not None else None,
        release_id=release.release_id,
        p_value=detection.p_value,
        matched_units=detection.matched_units,
        per_release=per_release,
    )


def _base_near(release: LicensedRelease, bounds) -> tuple[np.ndarray, np.ndarray]:
    """The base units near the leak and their mark group keys."""
    margin = MARGIN_STEPS * grid_step_deg(release.precision_m)
    window = shapely.box(bounds[0] - margin, bounds[1] - margin, bounds[2] + margin, bounds[3] + margin)
    group_index, group_keys = release_groups(release.source, release.precision_m)
    geoms, groups, start = [], [], 0
    reader = pq.ParquetFile(release.source)
    for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=[GEOMETRY_COLUMN]):
        g = shapely.from_wkb(batch.column(GEOMETRY_COLUMN).to_numpy(zero_copy_only=False))
        near = shapely.intersects(g, window)
        geoms.append(g[near])
        groups.append(group_keys[group_index[start:start + len(g)][near]])
        start += len(g)
    if not geoms:
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    return np.concatenate(geoms), np.concatenate(groups)
