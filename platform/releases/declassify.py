"""Release step 2, declassify (脱密): withhold sensitive kinds and categories, withhold every
unit that touches a sensitive zone, and coarsen heights and depths.

Plain Python on pyarrow Tables, vectorised over whole arrays. Units are withheld, never
clipped: a clipped room still traces the zone's outline with its cut edge. The coordinate
precision is only declared here and carried in the report: lightweight quantizes, after it
has dissolved floors and buildings, so their outlines sit on the grid too and no vertex is
rounded twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import Transformer
from shapely.errors import GEOSException

from corpora.schema import STORAGE_CRS, UNIT_KINDS

_QUAD_SEGMENTS = 8  # segments per quarter circle in zone buffers


@dataclass(frozen=True)
class DeclassifyPolicy:
    """What is withheld and how coarse the released heights, depths and coordinates are.

    sensitive_zones are WKT polygons in EPSG:4490 lon/lat. Units of a removed category also
    become zones, grown by zone_buffer_m metres, so that their neighbours cannot outline
    them. Heights (z >= 0) snap to height_step_m and depths (z < 0) to depth_step_m.
    """

    remove_categories: tuple[str, ...] = ()
    sensitive_zones: tuple[str, ...] = ()
    zone_buffer_m: float = 0.0
    height_step_m: float = 3.0
    depth_step_m: float = 1.0
    precision_m: float = 1.0
    drop_kinds: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("remove_categories", "sensitive_zones", "drop_kinds"):
            object.__setattr__(self, name, strings_field(name, getattr(self, name)))
        for name in ("height_step_m", "depth_step_m", "precision_m"):
            object.__setattr__(self, name, number_field(name, getattr(self, name), positive=True))
        object.__setattr__(self, "zone_buffer_m", number_field("zone_buffer_m", self.zone_buffer_m))
        unknown = sorted(set(self.drop_kinds) - set(UNIT_KINDS))
        if unknown:
            raise ValueError(
                f"policy field 'drop_kinds' names unknown kinds {unknown}; kinds are {list(UNIT_KINDS)}"
            )
        zone_geometries(self.sensitive_zones)  # refuse a bad zone now, not mid-release

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; from_dict(p.to_dict()) == p."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeclassifyPolicy:
        return cls(**known_fields(cls, data))


def declassify(
    table: pa.Table, policy: DeclassifyPolicy, *, zones: np.ndarray | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """The released rows and a report of what was withheld and how z was coarsened.

    A unit is counted under the first reason that withholds it: kind, category, zone.
    `zones`, when given, replaces the policy's own (a streaming caller that already grew every
    removed unit's zone across the whole corpus passes them, parsed once).
    """
    by_kind = _is_in(table.column("kind"), policy.drop_kinds)
    by_category = ~by_kind & _is_in(table.column("sensitive_category"), policy.remove_categories)
    by_zone = np.zeros(table.num_rows, dtype=bool)
    if zones is None:
        zones = zone_geometries(policy.sensitive_zones)
    if by_category.any() or zones.size:
        # Rooms stacked floor on floor share one footprint: each distinct one is tested once.
        encoded = pc.dictionary_encode(table.column("geometry").combine_chunks())
        footprint = encoded.indices.to_numpy(zero_copy_only=False)
        distinct = shapely.from_wkb(encoded.dictionary.to_numpy(zero_copy_only=False))
        zones = np.concatenate([zones, grown(distinct[np.unique(footprint[by_category])], policy.zone_buffer_m)])
        rest = np.flatnonzero(~(by_kind | by_category))
        tested = np.unique(footprint[rest])
        inside = np.zeros(len(distinct), dtype=bool)
        inside[tested[shapely.STRtree(zones).query(distinct[tested], predicate="intersects")[0]]] = True
        by_zone[rest] = inside[footprint[rest]]

    kinds = table.column("kind")
    report: dict[str, Any] = {
        "units_in": table.num_rows,
        "removed": {
            "kind": _counts(kinds, by_kind),
            "category": _counts(table.column("sensitive_category"), by_category),
            "zone": _counts(kinds, by_zone),  # by the withheld unit's kind
        },
        "zones": {
            "given": len(policy.sensitive_zones),
            "around_removed_units": int(by_category.sum()),
            "buffer_m": policy.zone_buffer_m,
        },
    }
    withheld = by_kind | by_category | by_zone
    released = table.filter(pa.array(~withheld)) if withheld.any() else table
    released, report["z"] = _coarsen_z(released, policy)
    report["units_out"] = released.num_rows
    report["precision_m"] = policy.precision_m  # applied by lightweight's quantization
    return released, report


def zone_geometries(wkts: tuple[str, ...]) -> np.ndarray:
    """Parse zone WKT, refusing anything that is not a valid, non-empty polygon."""
    try:
        zones = shapely.from_wkt(np.asarray(wkts, dtype=object), on_invalid="raise")
    except GEOSException as exc:
        raise ValueError(f"policy field 'sensitive_zones' holds unreadable WKT: {exc}") from exc
    polygonal = np.isin(shapely.get_type_id(zones), [3, 6])  # Polygon, MultiPolygon
    bad = ~polygonal | shapely.is_empty(zones) | ~shapely.is_valid(zones)
    if bad.any():
        raise ValueError(
            f"policy field 'sensitive_zones' item {int(np.argmax(bad))} is not a valid, non-empty polygon"
        )
    return zones


def grown(geometries: np.ndarray, distance_m: float) -> np.ndarray:
    """Buffer by metres in an azimuthal equidistant projection centred on the geometries,
    which keeps distances true to well under a metre across a city. The buffer's arcs are
    polygons whose vertices lie on the circle and whose edges cut inside it; the radius is
    widened so the edges clear the full distance."""
    if distance_m == 0 or geometries.size == 0:
        return geometries
    xmin, ymin, xmax, ymax = shapely.total_bounds(geometries)
    local = f"+proj=aeqd +lat_0={(ymin + ymax) / 2} +lon_0={(xmin + xmax) / 2} +ellps=GRS80 +units=m"
    to_local = Transformer.from_crs(STORAGE_CRS, local, always_xy=True)

    def forward(coords):
        return np.column_stack(to_local.transform(coords[:, 0], coords[:, 1]))

    def inverse(coords):
        return np.column_stack(to_local.transform(coords[:, 0], coords[:, 1], direction="INVERSE"))

    radius = distance_m / np.cos(np.pi / (4 * _QUAD_SEGMENTS))
    grown = shapely.buffer(shapely.transform(geometries, forward), radius, quad_segs=_QUAD_SEGMENTS)
    return shapely.transform(grown, inverse)


def _coarsen_z(table: pa.Table, policy: DeclassifyPolicy) -> tuple[pa.Table, dict[str, Any]]:
    """Floor z_min and ceil z_max to the step, so a released range always contains the true
    one; negative values (below ground) use the depth step."""
    report: dict[str, Any] = {
        "height_step_m": policy.height_step_m,
        "depth_step_m": policy.depth_step_m,
        "rule": "z_min floored and z_max ceiled to the step; depth step below 0 m",
    }
    changed = 0
    max_shift = 0.0
    for name, rounding in (("z_min", np.floor), ("z_max", np.ceil)):
        z = table.column(name).to_numpy()
        step = np.where(z < 0, policy.depth_step_m, policy.height_step_m)
        coarse = rounding(z / step) * step
        shift = np.abs(coarse - z)
        changed += int(np.count_nonzero(shift))
        max_shift = max(max_shift, float(shift.max(initial=0.0)))
        table = table.set_column(
            table.schema.get_field_index(name), table.schema.field(name), pa.array(coarse)
        )
    report["values_changed"] = changed
    report["max_shift_m"] = max_shift
    return table, report


def _is_in(column: pa.ChunkedArray, values: tuple[str, ...]) -> np.ndarray:
    if not values:
        return np.zeros(len(column), dtype=bool)
    return pc.is_in(column, value_set=pa.array(values, pa.string())).to_numpy(zero_copy_only=False)


def _counts(column: pa.ChunkedArray, mask: np.ndarray) -> dict[str, int]:
    if not mask.any():
        return {}
    counted = pc.value_counts(column.filter(pa.array(mask))).to_pylist()
    return {entry["values"]: entry["counts"] for entry in sorted(counted, key=lambda e: str(e["values"]))}


# Policy plumbing shared with the other release policies.


def known_fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
    """data as keyword arguments for cls, refusing what is not a field of it."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a policy must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown policy field {unknown[0]!r}; the fields are {sorted(known)}")
    return dict(data)


def strings_field(name: str, value: Any) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ValueError(f"policy field {name!r} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def number_field(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"policy field {name!r} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"policy field {name!r} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)
