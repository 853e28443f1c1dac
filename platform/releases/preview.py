"""A map preview drawn as SVG on the server: no tiles, no CDN, nothing from outside.

It draws at most `max_features` geometries (a preview, not a viewer), coloured by kind."""
from __future__ import annotations

import html
import math

import numpy as np
import shapely

KIND_COLOURS = {
    "room": "#4c8bf5", "floor": "#7aa7f7", "building": "#2f5fb3", "parcel": "#c8d6c0",
    "road": "#888888", "pipe": "#d9822b", "cable": "#9b59b6", "facility": "#b3261e",
}


def svg_map(geoms: np.ndarray, kinds: np.ndarray, *, width: int = 720, height: int = 480,
            max_features: int = 3000, title: str = "") -> str:
    if len(geoms) == 0:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>'
    if len(geoms) > max_features:
        pick = np.linspace(0, len(geoms) - 1, max_features).astype(int)
        geoms, kinds = geoms[pick], kinds[pick]
    # Parcels first so rooms and segments are drawn on top of them.
    order = np.argsort(kinds != "parcel", kind="stable")
    geoms, kinds = geoms[order], kinds[order]
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    # Degrees of longitude are shorter than degrees of latitude away from the equator.
    aspect = math.cos(math.radians((y0 + y1) / 2))
    span_x, span_y = max((x1 - x0) * aspect, 1e-9), max(y1 - y0, 1e-9)
    scale = min(width / span_x, height / span_y) * 0.95
    line = 0.25 / scale  # a quarter pixel, in data units: thin outlines, visible fills
    parts = []
    for geom, kind in zip(geoms, kinds):
        colour = KIND_COLOURS.get(str(kind), "#555555")
        if geom.geom_type in ("LineString", "MultiLineString"):
            parts.append(geom.svg(scale_factor=line, stroke_color=colour, opacity=0.9))
        else:
            parts.append(geom.svg(scale_factor=line, fill_color=colour, opacity=0.55))
    tx = (width - span_x * scale) / 2 - x0 * aspect * scale
    ty = (height + span_y * scale) / 2 + y0 * scale
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{html.escape(title)}" data-features="{len(geoms)}">'
        f'<rect width="{width}" height="{height}" fill="#f8faf8"/>'
        f'<g transform="matrix({aspect * scale},0,0,{-scale},{tx},{ty})">{"".join(parts)}</g></svg>'
    )
