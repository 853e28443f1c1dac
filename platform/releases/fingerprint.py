"""Fingerprint (release step 5): a per-recipient keyed perturbation of a conditional-class
release, so that a leaked subset names the recipient it came from.

Embedding
---------
The release base is quantized on the release grid: longitude and latitude are whole
multiples of ``grid_step_deg(q)`` degrees, a step that is at most q metres on the ground in
both axes anywhere (it is q metres of the longest degree on the CGCS2000 ellipsoid; around
Shanghai it is 0.85 q east-west and 0.99 q north-south). For each recipient, every unit is
translated rigidly by one of the 8 neighbouring grid cells, chosen by a keyed PRF of
(recipient key, unit key). So:

- every vertex moves by at most one step per axis: ``|offset| <= q * sqrt(2)``, inside the
  precision budget the release already grants;
- the package lies exactly on the release grid (it is bit-for-bit what the quantizer would
  write), so a recipient holding only their own package cannot see the mark, and rounding
  a leak to the release precision leaves it intact;
- the offset of a unit depends on nothing but the recipient key and the unit key, so it
  does not change with the batch, the order, or the other units.

The recipient key is first narrowed to a fingerprint key with HMAC-SHA256 (domain
separated from the release key's other uses); the per-unit PRF is keyed BLAKE2b, a MAC by
design (RFC 7693) that costs a third of HMAC-SHA256 on short unit ids. It is the only step
that runs once per unit in Python; the geometry work is whole-array.

Detection
---------
Leaked geometries carry no ids, so each is matched to the base by its bounding-box centre,
in grid steps: a match needs exactly one base unit within ``MATCH_RADIUS_STEPS`` (a second
one there, e.g. a stacked room with the same footprint, makes the unit ambiguous and it is
left out). Each matched unit's observed offset (leaked minus base centre, rounded to whole
steps) is compared with each candidate's keyed offset; a candidate's score is the number of
units that agree. By chance a unit agrees with probability 1/8, so the p-value of a score s
out of n is the binomial tail P[Binomial(n, 1/8) >= s]. The best candidate is accused only
if its p-value is below ``alpha / len(candidates)`` and no other candidate ties with it.

False accusations
-----------------
Take an innocent candidate: the leak was made without their key. The matching and the
observed offsets depend only on the leak and the base, and the candidate's keyed offsets
are uniform on the 8 cells and independent across distinct unit keys (units are counted
once per key), so their score is at most Binomial(n, 1/8) and their p-value falls below
alpha/m with probability at most alpha/m. By the union bound over the m candidates, the
probability of accusing any innocent recipient is at most alpha (default 1e-6), however
many candidates there are. This holds whoever made the leak: a candidate, a recipient not
among the candidates, or someone holding the unfingerprinted base (offset (0, 0) is not in
the alphabet, so the base agrees with nobody). A guilty recipient's units all agree, so n
matched units give p = 8**-n: 9 units suffice against up to 134 candidates, and a smaller
leak yields no accusation rather than a wrong one.

The mark survives subsetting, reordering, dropping attributes, reprojection (give
``leaked_crs``, or reproject back) and rounding to the release precision. It does not
survive rounding coarser than the release precision, per-unit noise of half a step or
more, or several recipients averaging their packages.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np
import pyproj
import shapely
from scipy.spatial import cKDTree
from scipy.stats import binom

from corpora.schema import STORAGE_CRS

DEFAULT_ALPHA = 1e-6
MATCH_RADIUS_STEPS = 3.0  # the largest offset is sqrt(2) steps; the rest absorbs rounding noise

_DOMAIN = b"miliao/release/fingerprint/v1"
_ON_GRID_TOLERANCE = 1e-3  # in steps: float noise of a quantized coordinate is far below this

# The longest degree on the CGCS2000 ellipsoid (a degree of latitude at the poles), so that
# one grid step is never longer than the precision on the ground.
_SEMI_MAJOR_M = 6_378_137.0
_FLATTENING = 1 / 298.257222101
_LONGEST_DEGREE_M = math.radians(_SEMI_MAJOR_M / math.sqrt(1 - _FLATTENING * (2 - _FLATTENING)))

# The keyed alphabet: the 8 neighbouring cells. (0, 0) is left out so that a copy of the
# unfingerprinted base agrees with no recipient.
_OFFSETS = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy], dtype=np.float64)
_CODE_AT = np.full((3, 3), -1, dtype=np.int64)  # [dy + 1, dx + 1] -> index into _OFFSETS
_CODE_AT[_OFFSETS[:, 1].astype(int) + 1, _OFFSETS[:, 0].astype(int) + 1] = np.arange(len(_OFFSETS))
_CHANCE = 1 / len(_OFFSETS)


@dataclass(frozen=True)
class Detection:
    """The verdict on one leak. ``false_accusation_bound`` is min(1, m * p_value): the chance
    that some innocent candidate would score as well as the best one did; an accusation is
    made only when it is below ``alpha``."""

    recipient: str | None
    p_value: float
    matched_units: int
    scores: dict[str, int]
    false_accusation_bound: float
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def grid_step_deg(precision_m: float) -> float:
    """The release grid's step in degrees (both axes) for a precision of ``precision_m``."""
    if not (isinstance(precision_m, numbers.Real) and math.isfinite(precision_m) and precision_m > 0):
        raise ValueError(f"precision_m must be a positive number of metres, not {precision_m!r}")
    return precision_m / _LONGEST_DEGREE_M


def embed(
    geoms: np.ndarray, unit_keys: np.ndarray, recipient_key: bytes, *, precision_m: float
) -> np.ndarray:
    """The recipient's package: each unit of the (grid-quantized) base moved rigidly to a
    keyed neighbouring grid cell. Refuses a base that is not on the release grid, since the
    mark would then be visible (and removable) as an off-grid residue."""
    step = grid_step_deg(precision_m)
    geoms = _geometries(geoms, "geoms")
    unit_keys = _unit_keys(unit_keys, len(geoms), "unit_keys")
    _check_key(recipient_key, "recipient_key")

    cells = shapely.get_coordinates(geoms) / step
    grid = np.rint(cells)
    off_grid = np.abs(cells - grid).max(initial=0.0)
    if off_grid > _ON_GRID_TOLERANCE:
        raise ValueError(
            f"geoms are not on the release grid for precision_m={precision_m} (a coordinate is "
            f"{off_grid:.3f} steps off): quantize to multiples of grid_step_deg(precision_m) first"
        )
    offsets = _OFFSETS[_unit_codes(recipient_key, unit_keys)]
    grid += np.repeat(offsets, shapely.get_num_coordinates(geoms), axis=0)
    return shapely.set_coordinates(geoms.copy(), grid * step)


def detect(
    leaked_geoms: np.ndarray,
    base_geoms: np.ndarray,
    base_unit_keys: np.ndarray,
    candidates: dict[str, bytes],
    *,
    precision_m: float,
    leaked_crs: str | pyproj.CRS | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Detection:
    """Which candidate (recipient id -> recipient key) the leak came from, if the evidence
    clears alpha after a Bonferroni correction; ``leaked_crs`` is the leak's CRS when it is
    not the storage CRS."""
    step = grid_step_deg(precision_m)
    leaked_geoms = _geometries(leaked_geoms, "leaked_geoms")
    base_geoms = _geometries(base_geoms, "base_geoms")
    base_unit_keys = _unit_keys(base_unit_keys, len(base_geoms), "base_unit_keys")
    if not candidates:
        raise ValueError("candidates must name at least one recipient")
    for recipient, key in candidates.items():
        _check_key(key, f"candidates[{recipient!r}]")
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    if leaked_crs is not None:
        leaked_geoms = _to_storage_crs(leaked_geoms, leaked_crs)

    matched, observed = _match(leaked_geoms, base_geoms, step)
    # One vote per unit key: two matches of the same key would share one keyed offset.
    keys, first = np.unique(base_unit_keys[matched], return_index=True)
    observed = observed[first]

    names = list(candidates)
    scores = np.array([np.count_nonzero(_unit_codes(candidates[r], keys) == observed) for r in names])
    p_values = binom.sf(scores - 1, len(keys), _CHANCE)
    best = int(np.argmax(scores))
    p_best = float(p_values[best])
    unique_best = np.count_nonzero(scores == scores[best]) == 1
    return Detection(
        recipient=names[best] if unique_best and p_best < alpha / len(names) else None,
        p_value=p_best,
        matched_units=len(keys),
        scores=dict(zip(names, scores.tolist())),
        false_accusation_bound=min(1.0, len(names) * p_best),
        alpha=alpha,
    )


def _unit_codes(recipient_key: bytes, unit_keys: np.ndarray) -> np.ndarray:
    """Each unit's keyed offset, as an index into _OFFSETS (uniform: 256 is a multiple of 8)."""
    key = hmac.digest(recipient_key, _DOMAIN, "sha256")
    digests = b"".join(
        [hashlib.blake2b(unit.encode(), key=key, digest_size=1).digest() for unit in unit_keys.tolist()]
    )
    return np.frombuffer(digests, dtype=np.uint8) % len(_OFFSETS)


def _match(leaked: np.ndarray, base: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(base index, observed offset code) for each leaked unit with exactly one base unit in
    reach; code -1 when the observed offset is not in the alphabet (it then agrees with no
    one, which keeps the test conservative)."""
    base_xy = _centres(base) / step
    leaked_xy = _centres(leaked) / step
    base_rows = np.flatnonzero(np.isfinite(base_xy).all(axis=1))
    leaked_xy = leaked_xy[np.isfinite(leaked_xy).all(axis=1)]

    tree = cKDTree(base_xy[base_rows])
    distance, nearest = tree.query(leaked_xy, k=2, distance_upper_bound=MATCH_RADIUS_STEPS)
    alone = np.isfinite(distance[:, 0]) & np.isinf(distance[:, 1])
    matched = base_rows[nearest[alone, 0]]

    offset = np.rint(leaked_xy[alone] - base_xy[matched]).astype(np.int64)
    in_alphabet = (np.abs(offset) <= 1).all(axis=1)
    codes = np.full(len(matched), -1, dtype=np.int64)
    codes[in_alphabet] = _CODE_AT[offset[in_alphabet, 1] + 1, offset[in_alphabet, 0] + 1]
    return matched, codes


def _centres(geoms: np.ndarray) -> np.ndarray:
    """Bounding-box centres: they move exactly with a rigid translation (NaN when empty)."""
    bounds = shapely.bounds(geoms)
    return (bounds[:, :2] + bounds[:, 2:]) / 2


def _to_storage_crs(geoms: np.ndarray, crs: str | pyproj.CRS) -> np.ndarray:
    try:
        transformer = pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)
    except pyproj.exceptions.CRSError as exc:
        raise ValueError(f"leaked_crs is not a CRS pyproj knows: {crs!r}") from exc
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _geometries(value, name: str) -> np.ndarray:
    geoms = np.asarray(value, dtype=object)
    if geoms.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of geometries, not shape {geoms.shape}")
    return geoms


def _unit_keys(value, count: int, name: str) -> np.ndarray:
    keys = np.asarray(value)
    if keys.shape != (count,):
        raise ValueError(f"{name} must hold one key per geometry: shape {keys.shape}, {count} geometries")
    if keys.dtype.kind not in "UO":
        raise ValueError(f"{name} must hold strings, not {keys.dtype}")
    return keys


def _check_key(key, name: str) -> None:
    if not isinstance(key, bytes) or not key:
        raise ValueError(f"{name} must be a non-empty bytes key")
