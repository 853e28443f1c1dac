"""Shift (release step 3): keyed coordinate shifts, each with measured distortion and a
measured attack. Plain Python over whole arrays (numpy, shapely 2, scipy, pyproj); no Django.

Modes
-----
All implement :class:`ShiftMode`: ``apply(lon, lat, *, cell=None)`` on whole arrays, and
``state_dict()`` / ``from_state()`` for the release record. Metres are those of
:class:`LocalFrame`.

``GCJ02Shift``
    The public WGS84 -> GCJ-02 ("Mars coordinates") transform, so that a release overlays
    Chinese basemaps. CGCS2000 input is treated as WGS84: the two frames differ by
    centimetres, GCJ-02 moves points by hundreds of metres. Not keyed.
``SmoothFieldShift``
    A keyed smooth displacement field. Lattice nodes half a wavelength apart each carry a
    keyed vector of length ``max_offset_m``, blended by a quadratic B-spline (C1). The blend
    is a convex combination, so ``|offset| <= max_offset_m``; neighbouring nodes differ by at
    most twice that, so the field's Jacobian has norm at most ``strain_bound =
    4*sqrt(2)*max_offset_m/wavelength_m`` (0.85 at the defaults; below 2*pi*max/wavelength).
    The constructor requires it below 1, so the map cannot fold: units that touch keep
    touching and disjoint ones stay disjoint (only vertices move and edges stay straight, so
    a long edge can still clip a neighbour's corner). The field is local on purpose: a node
    reaches 1.5 lattice steps, so landmarks say nothing about the field a few kilometres
    away, whereas a sum of global sinusoids has few parameters, which landmarks anywhere in
    the city would recover. It is not an isometry. Relative change of 20,000 rooms of 4-12 m
    (p50 / p95), measured:

    ==========================  =========  =========
    max_offset_m, wavelength_m  area       length
    ==========================  =========  =========
    300, 2000 (defaults)        15% / 44%  8% / 22%
    300, 4000                    8% / 21%  4% / 11%
    100, 4000                    3% / 7%   1% / 4%
    ==========================  =========  =========
``CellRigidShift``
    Keyed piecewise-rigid: the plane is cut into ``cell_m`` squares; each cell gets a keyed
    translation and, optionally, a small keyed rotation about its centre, and every unit
    moves rigidly with the cell that holds its representative point. Units keep their shape
    (exactly in the frame; on the ground to 3e-5, as a move north changes the metres per
    degree of longitude); where neighbouring units fall in different cells they separate or
    overlap (:func:`measure_shift` counts both).

What a shift protects, in plain words
-------------------------------------
Measured with :func:`attack_residuals`: an attacker knows the true position of k landmarks
within 2 km, fits the shift (one landmark: a constant offset; 5 or 20: a thin-plate spline)
and inverts it. Median error on the other points, in metres (4 keys x 4 centres in
Shanghai):

=========================================  =====  =====  ======
mode                                       k = 1  k = 5  k = 20
=========================================  =====  =====  ======
GCJ-02                                       0      0      0
smooth field 300 m, 2000 m (defaults)      180    125     40
smooth field 300 m, 4000 m                 140     50      8
smooth field 100 m, 4000 m                  45     16      3
per cell 500 m, 300 m (defaults)           260    280    200
=========================================  =====  =====  ======

- GCJ-02 is public: anyone inverts it exactly, with no landmark at all.
- The smooth field is weak against anyone who knows landmarks nearby. At the defaults, 5
  landmarks within 2 km cut the error from about 180 m to 125 m and 20 landmarks to 40 m.
  A field smooth enough to keep shapes falls faster: at a 4 km wavelength, 5 landmarks
  leave tens of metres (16-50 m) and 20 leave a few metres (3-8 m).
- The per-cell mode needs a landmark in every cell: a landmark gives away its own cell's
  move exactly (translation only), while a cell without one stays hundreds of metres
  wrong however many landmarks lie around it. (A 2 km disc holds about 50 cells of 500 m,
  so the medians above are those of cells without a landmark.)
- These are uniform points. Real units cluster, so landmarks lie nearer their targets: a
  release measures the same attacker on its own layout (``releases.relocation``,
  ``report["attacks"]["landmarks"]``), where the residuals are 2-5 times smaller.
- No shape-preserving shift withstands a basemap. Building footprints are public (every web
  map): rebuilding buildings from their units and matching them by shape within the
  published offset bound undoes the smooth field and the per-cell mode alike, to the metre
  (``releases.relocation``, ``report["attacks"]["relocation"]``).
- No shift replaces declassification. Whatever must not be located has to be removed or
  masked (step 2) before a release, and location generalized; a shift serves compliance and
  interoperability (坐标偏转) and only costs an attacker ground truth.
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
import hmac
import math
import numbers
import struct
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyproj
import shapely
from scipy import interpolate, ndimage

from corpora import gcj02

__all__ = [
    "DEFAULT_ORIGIN",
    "CellRigidShift",
    "GCJ02Shift",
    "LocalFrame",
    "Percentiles",
    "ShiftMode",
    "ShiftReport",
    "SmoothFieldShift",
    "attack_residuals",
    "invert_public",
    "landmark_guess",
    "measure_shift",
    "shift_geometries",
]

DEFAULT_ORIGIN = (121.4737, 31.2304)  # central Shanghai; a release elsewhere passes its own city

_GRS80_A = 6378137.0
_GRS80_E2 = 0.006694380022900787
_MAX_TABLE = 1 << 24  # lattice nodes a single call may key; the frame's extent keeps real data far below
_FIELD_LABEL = b"miliao/shift/smooth-field/v1"
_CELL_LABEL = b"miliao/shift/cell-rigid/v1"
_KEY_ID_LABEL = b"miliao/shift/key-id/v1"


class LocalFrame:
    """Metres east and north of an origin, linear in (lon, lat): plate carree on GRS80 at the
    origin's latitude.

    Linear, so a constant move in metres is a constant move in degrees (rigid cells stay rigid
    to float precision) and the frame costs two multiply-adds a vertex; pyproj's transverse
    Mercator takes about a second per direction for 5 million vertices here, the whole shift
    budget. The price: east-west metres are exact on the origin's parallel and off by
    cos(lat)/cos(lat0) elsewhere, about 2% at the ``EXTENT_DEG`` the frame accepts around
    Shanghai. Offset and strain bounds hold in frame metres.
    """

    EXTENT_DEG = 2.0

    def __init__(self, lon0: float, lat0: float):
        if not (-180.0 <= lon0 <= 180.0 and -80.0 <= lat0 <= 80.0):
            raise ValueError(f"origin: (lon, lat) must lie within +-180, +-80 degrees, got {(lon0, lat0)!r}")
        self.lon0, self.lat0 = float(lon0), float(lat0)
        s = math.sin(math.radians(lat0))
        w = 1.0 - _GRS80_E2 * s * s
        self.m_per_deg_lon = math.radians(1.0) * _GRS80_A * math.cos(math.radians(lat0)) / math.sqrt(w)
        self.m_per_deg_lat = math.radians(1.0) * _GRS80_A * (1.0 - _GRS80_E2) / w**1.5

    def to_metres(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlon, dlat = lon - self.lon0, lat - self.lat0
        if not (np.all(np.abs(dlon) <= self.EXTENT_DEG) and np.all(np.abs(dlat) <= self.EXTENT_DEG)):
            raise ValueError(
                f"points must be finite and within {self.EXTENT_DEG} degrees of the frame origin "
                f"{(self.lon0, self.lat0)}: pass an origin in the data's city"
            )
        return dlon * self.m_per_deg_lon, dlat * self.m_per_deg_lat

    def to_degrees(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lon0 + x / self.m_per_deg_lon, self.lat0 + y / self.m_per_deg_lat


class ShiftMode(abc.ABC):
    """One shift mode: a deterministic map of (lon, lat) arrays, and its state as plain JSON.

    ``state_dict()`` of a keyed mode holds its key (hex): keep it with the release keys;
    ``describe()`` is the publishable form.
    """

    name: ClassVar[str]  # as its state and a release's report name it
    policy_name: ClassVar[str]  # as a release policy's `shift.mode` names it (pipeline.SHIFT_MODES)
    keyed: ClassVar[bool]
    _params: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[ShiftMode]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ShiftMode._registry[cls.name] = cls

    @abc.abstractmethod
    def apply(
        self, lon: np.ndarray, lat: np.ndarray, *, cell: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shifted copies of 1-D lon/lat arrays. ``cell`` ((n, 2) integer grid cells) only
        matters to modes that move whole units; the others ignore it."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"mode": self.name}
        for param in self._params:
            value = getattr(self, param)
            if isinstance(value, bytes):
                value = value.hex()
            elif isinstance(value, tuple):
                value = list(value)
            state[param] = value
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ShiftMode:
        """Rebuild a mode from ``state_dict()``; on the base class, whichever mode the state
        names. Raises ValueError naming the bad field."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        mode = state.get("mode")
        if cls is ShiftMode:
            target = cls._registry.get(mode) if isinstance(mode, str) else None
        else:
            target = cls if mode == cls.name else None
        if target is None:
            expected = sorted(cls._registry) if cls is ShiftMode else cls.name
            raise ValueError(f"mode: expected {expected}, got {mode!r}")
        fields = {k: v for k, v in state.items() if k != "mode"}
        for name in target._params:
            if name not in fields:
                raise ValueError(f"{name}: missing from the state")
        for name in fields:
            if name not in target._params:
                raise ValueError(f"{name}: not a field of {target.name}")
        if "key" in fields:
            try:
                fields["key"] = bytes.fromhex(fields["key"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"key: must be a hex string ({exc})") from None
        return target(**fields)

    @classmethod
    def for_policy(cls, params: Mapping[str, Any], key: bytes) -> ShiftMode | None:
        """The mode a release policy's `shift` names (`smooth`, `cell`, `gcj02`), built with the
        policy's parameters and, for a keyed mode, ``key``; None where the policy names no mode
        of this module (pipeline.UNSHIFTED). Raises ValueError naming what is wrong."""
        mode = params.get("mode")
        target = next((c for c in ShiftMode._registry.values() if c.policy_name == mode), None)
        if target is None:
            return None
        options = {k: v for k, v in params.items() if k != "mode"}
        if not target.keyed:
            if options:
                raise ValueError(f"{target.title} takes no parameters, not {sorted(options)}")
            return target()
        try:
            return target(key, **options)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def describe(self) -> dict[str, Any]:
        """``state_dict()`` with the key replaced by a key id: safe for a release report."""
        state = self.state_dict()
        key = state.pop("key", None)
        if key is not None:
            state["key_id"] = hmac.new(bytes.fromhex(key), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]
        return state


class GCJ02Shift(ShiftMode):
    """WGS84 (or CGCS2000, centimetres apart) to GCJ-02 by the standard published formula on
    the Krasovsky ellipsoid, inside the usual China rectangle 73.66-135.05 E, 3.86-53.55 N;
    points outside pass unchanged. The formula is `corpora.gcj02`'s, which ingest inverts."""

    name = policy_name = "gcj02"
    title = "GCJ-02"
    keyed = False

    def apply(self, lon, lat, *, cell=None):
        return gcj02.from_wgs84(*_points(lon, lat))


class SmoothFieldShift(ShiftMode):
    """Keyed C1 displacement field, ``|offset| <= max_offset_m``, Jacobian norm at most
    ``strain_bound`` (< 1). See the module docstring for what it does and does not hide."""

    name, policy_name = "smooth_field", "smooth"
    keyed = True
    _params = ("key", "max_offset_m", "wavelength_m", "origin")

    def __init__(
        self,
        key: bytes,
        *,
        max_offset_m: float = 300.0,
        wavelength_m: float = 2000.0,
        origin: tuple[float, float] = DEFAULT_ORIGIN,
    ):
        self.key = _check_key(key)
        self.max_offset_m = _positive("max_offset_m", max_offset_m)
        self.wavelength_m = _positive("wavelength_m", wavelength_m)
        self.origin = _check_origin(origin)
        self.frame = LocalFrame(*self.origin)
        if self.strain_bound >= 1.0:
            raise ValueError(
                f"wavelength_m must exceed 4*sqrt(2)*max_offset_m "
                f"= {self.max_offset_m * 4 * math.sqrt(2):.0f} m, else the field may fold "
                f"(strain bound {self.strain_bound:.2f} >= 1)"
            )

    @property
    def strain_bound(self) -> float:
        """Upper bound on the spectral norm of the displacement's Jacobian (frame metres)."""
        return 4.0 * math.sqrt(2.0) * self.max_offset_m / self.wavelength_m

    def displacement(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The field at frame metres (x, y), in metres."""
        step = self.wavelength_m / 2.0
        u, v = x / step, y / step
        # A quadratic B-spline at u blends nodes round(u)-1 .. round(u)+1.
        table, i0, j0 = _keyed_uniforms(
            self.key, _FIELD_LABEL, np.floor(u + 0.5).astype(np.int64), np.floor(v + 0.5).astype(np.int64),
            halo=1, count=1,
        )
        angle = 2.0 * np.pi * table[..., 0]
        grid = np.stack([v - j0, u - i0])
        dx, dy = (
            ndimage.map_coordinates(node, grid, order=2, prefilter=False, mode="nearest")
            for node in (self.max_offset_m * np.cos(angle), self.max_offset_m * np.sin(angle))
        )
        return dx, dy

    def apply(self, lon, lat, *, cell=None):
        lon, lat = _points(lon, lat)
        if lon.size == 0:
            return lon.copy(), lat.copy()
        dx, dy = self.displacement(*self.frame.to_metres(lon, lat))
        return lon + dx / self.frame.m_per_deg_lon, lat + dy / self.frame.m_per_deg_lat


class CellRigidShift(ShiftMode):
    """Keyed piecewise-rigid shift on a grid of ``cell_m`` squares of the frame. Each cell's
    translation is uniform in a disc and its rotation uniform in +-``max_rotation_deg`` about
    the cell centre; the disc is sized so that the two together stay within ``max_offset_m``
    for every point within half a diagonal of the centre (a long line held by the cell can
    reach further, and a rotation then moves its far end further)."""

    name, policy_name = "cell_rigid", "cell"
    keyed = True
    _params = ("key", "cell_m", "max_offset_m", "max_rotation_deg", "origin")

    def __init__(
        self,
        key: bytes,
        *,
        cell_m: float = 500.0,
        max_offset_m: float = 300.0,
        max_rotation_deg: float = 0.0,
        origin: tuple[float, float] = DEFAULT_ORIGIN,
    ):
        self.key = _check_key(key)
        self.cell_m = _positive("cell_m", cell_m)
        self.max_offset_m = _positive("max_offset_m", max_offset_m)
        self.max_rotation_deg = _positive("max_rotation_deg", max_rotation_deg, zero_ok=True)
        self.origin = _check_origin(origin)
        self.frame = LocalFrame(*self.origin)
        # A rotation moves a point of the cell by up to angle * half-diagonal.
        half_diagonal = self.cell_m / math.sqrt(2.0)
        self._translation_m = self.max_offset_m - math.radians(self.max_rotation_deg) * half_diagonal
        if self._translation_m <= 0.0:
            raise ValueError(
                "max_rotation_deg: the rotation alone would move cell corners beyond max_offset_m; "
                f"keep it below {math.degrees(self.max_offset_m * math.sqrt(2.0) / self.cell_m):.1f}"
            )

    def cell_of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """(n, 2) grid cells (column, row) of the frame holding each point."""
        x, y = self.frame.to_metres(*_points(lon, lat))
        return np.column_stack([np.floor(x / self.cell_m), np.floor(y / self.cell_m)]).astype(np.int64)

    def apply(self, lon, lat, *, cell=None):
        """Moves each point with its cell: ``cell`` gives each point's unit cell (e.g. that of
        its geometry's representative point); without it, the cell holding the point."""
        lon, lat = _points(lon, lat)
        if lon.size == 0:
            return lon.copy(), lat.copy()
        cell = self.cell_of(lon, lat) if cell is None else np.asarray(cell)
        if cell.shape != (lon.size, 2) or not np.issubdtype(cell.dtype, np.integer):
            raise ValueError(f"cell: must be integers of shape ({lon.size}, 2), not {cell.dtype}{cell.shape}")
        ci, cj = cell[:, 0].astype(np.int64), cell[:, 1].astype(np.int64)
        table, i0, j0 = _keyed_uniforms(self.key, _CELL_LABEL, ci, cj, halo=0, count=3)
        radius = self._translation_m * np.sqrt(table[..., 0])
        heading = 2.0 * np.pi * table[..., 1]
        row, col = cj - j0, ci - i0
        dx = (radius * np.cos(heading))[row, col]
        dy = (radius * np.sin(heading))[row, col]
        if self.max_rotation_deg > 0.0:  # when off, skip the per-vertex trigonometry
            angle = (np.radians(self.max_rotation_deg) * (2.0 * table[..., 2] - 1.0))[row, col]
            x, y = self.frame.to_metres(lon, lat)
            rx, ry = x - (ci + 0.5) * self.cell_m, y - (cj + 0.5) * self.cell_m
            cos, sin = np.cos(angle), np.sin(angle)
            dx += (cos - 1.0) * rx - sin * ry
            dy += sin * rx + (cos - 1.0) * ry
        return lon + dx / self.frame.m_per_deg_lon, lat + dy / self.frame.m_per_deg_lat


def shift_geometries(geoms: np.ndarray, mode: ShiftMode) -> np.ndarray:
    """A shifted copy of an array of shapely geometries: every vertex of every geometry in one
    ``mode.apply`` call. For ``CellRigidShift`` each vertex carries the cell of its geometry's
    representative point, so a unit moves as one. Types, Z values, None and empties are kept."""
    geoms = np.array(geoms, dtype=object)  # a copy: set_coordinates writes into the array
    # Z costs a third more in set_coordinates, so only carry it when some geometry has one.
    coords = shapely.get_coordinates(geoms, include_z=bool(shapely.has_z(geoms).any()))
    cell = None
    if isinstance(mode, CellRigidShift):
        counts = shapely.get_num_coordinates(geoms)
        rep = shapely.point_on_surface(geoms[counts > 0])
        cell = np.repeat(mode.cell_of(shapely.get_x(rep), shapely.get_y(rep)), counts[counts > 0], axis=0)
    coords[:, 0], coords[:, 1] = mode.apply(coords[:, 0], coords[:, 1], cell=cell)
    return shapely.set_coordinates(geoms, coords)


HISTOGRAM_BINS = 20


@dataclasses.dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    max: float
    # The whole distribution, for the release page's histogram: HISTOGRAM_BINS equal bins
    # from 0 to the maximum ({"edges": bins + 1 floats, "counts": bins ints}).
    histogram: dict[str, list] | None = None

    @classmethod
    def of(cls, values: np.ndarray) -> Percentiles | None:
        if values.size == 0:
            return None
        p50, p95, top = np.percentile(values, [50, 95, 100])
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, float(top) or 1.0))
        return cls(float(p50), float(p95), float(top),
                   {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]})


@dataclasses.dataclass(frozen=True)
class ShiftReport:
    """Distortion and attack figures of one shift, for the release report (step 6).

    ``area_error`` / ``length_error`` are relative (|after/before - 1|) on the ground, for
    polygons (area, perimeter) and lines (length); None when there are none.
    ``broken_adjacency`` counts pairs that touched and no longer do (gap or overlap);
    ``new_intersections`` counts pairs that were disjoint and now intersect.
    ``attack_residual_m`` is None when landmarks were not measured on uniform points.
    """

    mode: dict[str, Any]
    count: int
    offset_m: Percentiles
    area_error: Percentiles | None
    length_error: Percentiles | None
    touching_pairs: int
    broken_adjacency: int
    new_intersections: int
    attack_residual_m: dict[int, float] | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure_shift(
    original: np.ndarray, shifted: np.ndarray, mode: ShiftMode, *, rng_seed: int = 0, landmarks: bool = True,
    contacts: bool = True,
) -> ShiftReport:
    """Measures what ``mode`` did to ``original`` (giving ``shifted``): offsets of
    representative points (geodesic metres), relative area and length errors (in a transverse
    Mercator centred on the data), topology changes between pairs (STRtree bulk queries), and,
    unless ``landmarks`` is False, :func:`attack_residuals` on uniform points around the data's
    centre (a release measures them on its own layout instead: ``releases.relocation``)."""
    original = np.asarray(original, dtype=object)
    shifted = np.asarray(shifted, dtype=object)
    if original.shape != shifted.shape or original.ndim != 1:
        raise ValueError(f"original and shifted must be 1-D and aligned: {original.shape} vs {shifted.shape}")
    present = ~(shapely.is_missing(original) | shapely.is_empty(original))
    if not present.any():
        raise ValueError("original holds no geometry to measure")

    rep0 = shapely.point_on_surface(original[present])
    rep1 = shapely.point_on_surface(shifted[present])
    lon0, lat0 = shapely.get_x(rep0), shapely.get_y(rep0)
    _, _, offsets = pyproj.Geod(ellps="GRS80").inv(lon0, lat0, shapely.get_x(rep1), shapely.get_y(rep1))
    centre_lon, centre_lat = float(np.mean(lon0)), float(np.mean(lat0))

    to_metres = _local_tm(centre_lon, centre_lat).transform
    before = shapely.transform(original[present], to_metres, interleaved=False)
    after = shapely.transform(shifted[present], to_metres, interleaved=False)

    # contacts=False: the caller measures contacts itself (a release, on its written file).
    no_pairs = (np.array([], np.int64), np.array([], np.int64))
    touch_i, touch_j = _pairs(original, "touches") if contacts else no_pairs
    hit_i, hit_j = _pairs(shifted, "intersects") if contacts else no_pairs
    return ShiftReport(
        mode=mode.describe(),
        count=int(original.size),
        offset_m=Percentiles.of(np.asarray(offsets)),
        area_error=_relative_change(shapely.area(before), shapely.area(after)),
        length_error=_relative_change(shapely.length(before), shapely.length(after)),
        touching_pairs=int(touch_i.size),
        broken_adjacency=int(np.count_nonzero(~shapely.touches(shifted[touch_i], shifted[touch_j]))),
        new_intersections=int(np.count_nonzero(~shapely.intersects(original[hit_i], original[hit_j]))),
        attack_residual_m=attack_residuals(
            mode, centre_lon=centre_lon, centre_lat=centre_lat, rng_seed=rng_seed
        ) if landmarks else None,
    )


def attack_residuals(
    mode: ShiftMode,
    *,
    centre_lon: float,
    centre_lat: float,
    ks: tuple[int, ...] = (1, 5, 20),
    radius_m: float = 2000.0,
    trials: int = 20,
    held_out: int = 200,
    rng_seed: int = 0,
) -> dict[int, float]:
    """Median error (metres) of an attacker who undoes ``mode`` around a centre, for each k.

    Landmarks and held-out points are uniform in the disc of ``radius_m``; each trial draws
    fresh ones. A public (unkeyed) mode is inverted outright by fixed-point iteration on its
    own formula, so k does not matter. For a keyed mode the attacker fits the map from shifted
    to true positions on k landmarks -- fewer than 3 pin only a constant offset (their mean),
    3 or more a thin-plate spline with an affine part -- and applies it to the held-out points.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: landmark counts must be at least 1, got {ks!r}")
    rng = np.random.default_rng(rng_seed)
    local = _local_tm(centre_lon, centre_lat)
    result = {}
    for k in ks:
        errors = []
        for _ in range(trials):
            r = radius_m * np.sqrt(rng.random(k + held_out))
            a = 2.0 * np.pi * rng.random(k + held_out)
            true = np.column_stack([r * np.cos(a), r * np.sin(a)])
            lon, lat = local.transform(true[:, 0], true[:, 1], direction="INVERSE")
            slon, slat = mode.apply(lon, lat)
            seen = np.column_stack(local.transform(slon, slat))
            if not mode.keyed:
                guess = np.column_stack(local.transform(*invert_public(mode, slon, slat)))[k:]
            else:
                guess = landmark_guess(seen[:k], true[:k], seen[k:])
            errors.append(np.hypot(*(guess - true[k:]).T))
        result[k] = float(np.median(np.concatenate(errors)))
    return result


def landmark_guess(seen_landmarks: np.ndarray, true_landmarks: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The landmark attacker's guess of the true positions of ``seen`` ((n, 2) metres of the
    shifted output), from k landmarks whose shifted and true positions they know: fewer than
    3 pin only a constant offset (their mean), 3 or more a thin-plate spline with an affine
    part (the mean offset where they are collinear and pin no spline). Landmarks released at
    one position (rooms located by one grid cell) are one node with their mean offset: a
    spline through one node with two offsets does not exist."""
    offsets = true_landmarks - seen_landmarks
    seen_landmarks, node = np.unique(seen_landmarks, axis=0, return_inverse=True)
    node = node.ravel()
    offsets = np.column_stack([np.bincount(node, weights=offsets[:, i]) for i in (0, 1)]) / np.bincount(node)[:, None]
    if len(seen_landmarks) >= 3:
        try:
            fit = interpolate.RBFInterpolator(seen_landmarks, offsets, kernel="thin_plate_spline")
        except np.linalg.LinAlgError:
            pass
        else:
            return seen + fit(seen)
    return seen + offsets.mean(axis=0)


def invert_public(mode: ShiftMode, lon: np.ndarray, lat: np.ndarray, *, rounds: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """What anyone computes from an unkeyed mode's published formula: the points that ``mode``
    moves to (lon, lat), by fixed-point iteration (the offset's gradient is ~1e-3, so each
    round gains ~3 digits)."""
    if mode.keyed:
        raise ValueError(f"mode: {mode.name} is keyed; only a public mode can be inverted without its key")
    lon, lat = _points(lon, lat)
    guess_lon, guess_lat = lon.copy(), lat.copy()
    for _ in range(rounds):
        f_lon, f_lat = mode.apply(guess_lon, guess_lat)
        guess_lon -= f_lon - lon
        guess_lat -= f_lat - lat
    return guess_lon, guess_lat


def _points(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if lon.ndim != 1 or lon.shape != lat.shape:
        raise ValueError(f"lon and lat must be 1-D arrays of one length, got {lon.shape} and {lat.shape}")
    return lon, lat


def _keyed_uniforms(
    key: bytes, label: bytes, i: np.ndarray, j: np.ndarray, *, halo: int, count: int
) -> tuple[np.ndarray, int, int]:
    """Keyed uniforms in [0, 1) for every lattice node within ``halo`` (Chebyshev) of some
    (i, j): ``count`` per node, from HMAC-SHA256(key, label | i | j), so a node's values depend
    on nothing but the key and the node. Returned as a dense (rows, cols, count) table over the
    nodes' bounding box, with its first column and row; nodes not asked for are 0.

    One HMAC per node touched -- a city has thousands, however many vertices -- found with an
    O(n) mask over the box rather than a sort of the vertices."""
    i0, j0 = int(i.min()) - halo, int(j.min()) - halo
    cols, rows = int(i.max()) + halo - i0 + 1, int(j.max()) + halo - j0 + 1
    if rows * cols > _MAX_TABLE:
        raise ValueError(f"cell: the points span {rows} x {cols} lattice nodes, more than {_MAX_TABLE}")
    touched = np.zeros((rows, cols), dtype=bool)
    touched[j - j0, i - i0] = True
    if halo:
        touched = ndimage.binary_dilation(touched, structure=np.ones((2 * halo + 1,) * 2, dtype=bool))
    node_j, node_i = np.nonzero(touched)
    words = np.frombuffer(
        b"".join(
            hmac.digest(key, label + struct.pack(">qq", a, b), "sha256")
            for a, b in zip((node_i + i0).tolist(), (node_j + j0).tolist(), strict=True)
        ),
        dtype=">u8",
    ).reshape(-1, 4)[:, :count]
    table = np.zeros((rows, cols, count))
    table[node_j, node_i] = (words >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return table, i0, j0


def _local_tm(lon: float, lat: float) -> pyproj.Transformer:
    """Geographic (CGCS2000 ~ WGS84) to metres of a transverse Mercator centred on (lon, lat)."""
    return pyproj.Transformer.from_crs(
        "EPSG:4490",
        f"+proj=tmerc +lon_0={lon} +lat_0={lat} +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m",
        always_xy=True,
    )


def _relative_change(before: np.ndarray, after: np.ndarray) -> Percentiles | None:
    keep = before > 0
    return Percentiles.of(np.abs(after[keep] / before[keep] - 1.0))


def _pairs(geoms: np.ndarray, predicate: str) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of ``geoms`` satisfying ``predicate``, by one bulk STRtree query."""
    left, right = shapely.STRtree(geoms).query(geoms, predicate=predicate)
    keep = left < right
    return left[keep], right[keep]


def _check_key(key) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ValueError("key: must be at least 16 bytes of secret")
    return bytes(key)


def _positive(name: str, value, *, zero_ok: bool = False) -> float:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not real or value < 0 or (value == 0 and not zero_ok):
        sign = "non-negative" if zero_ok else "positive"
        raise ValueError(f"{name}: must be a {sign} finite number, got {value!r}")
    return float(value)


def _check_origin(origin) -> tuple[float, float]:
    """A (lon, lat) pair of floats; LocalFrame checks the range."""
    try:
        lon, lat = (float(v) for v in origin)
    except (TypeError, ValueError):
        raise ValueError(f"origin: must be a (lon, lat) pair, got {origin!r}") from None
    return lon, lat
