"""GCJ-02, the "Mars" datum of Chinese web maps: WGS84 plus a published, smooth obfuscation inside
a box around China, on the Krasovsky ellipsoid. One copy of the formula for the platform: ingest
reads GCJ-02 files back to WGS84 (`to_wgs84`), and a release may be published in GCJ-02 so that
it overlays those maps (`releases.shift.GCJ02Shift`, `from_wgs84`). Points outside the box pass
unchanged either way."""
from __future__ import annotations

import numpy as np

AREA = (73.66, 3.86, 135.05, 53.55)  # west, south, east, north: where the offset applies
_A, _EE = 6378245.0, 0.00669342162296594323  # Krasovsky 1940
ITERATIONS = 5  # each fixed-point step gains 2-3 digits; five leave under 1e-12° (0.1 µm)


def from_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published forward formula (the one coordTransform and the map SDKs use)."""
    x, y = lon - 105.0, lat - 35.0
    periodic = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + periodic
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + periodic
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = np.radians(lat)
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    dlat = dlat * 180.0 / (_A * (1.0 - _EE) / (magic * np.sqrt(magic)) * np.pi)
    dlon = dlon * 180.0 / (_A / np.sqrt(magic) * np.cos(radlat) * np.pi)
    west, south, east, north = AREA
    inside = (lon > west) & (lon < east) & (lat > south) & (lat < north)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse, which has no formula: fixed-point iteration on `from_wgs84`, which converges
    fast because the offset (a few hundred metres) changes slowly with position."""
    wgs_lon, wgs_lat = np.array(lon, dtype=float), np.array(lat, dtype=float)
    for _ in range(ITERATIONS):
        shifted_lon, shifted_lat = from_wgs84(wgs_lon, wgs_lat)
        wgs_lon -= shifted_lon - lon
        wgs_lat -= shifted_lat - lat
    return wgs_lon, wgs_lat
