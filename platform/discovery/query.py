"""Catalogue search, as plain data: the filters a reader asks for, parsed and checked, and the
spatial tests they need (box against extent, grid code against covered cells)."""
from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from django.utils.translation import gettext

from corpora import grid
from kernel.errors import InvalidInput

MAX_TEXT = 200
_CODE = re.compile(rf"{grid.PREFIX}[0-7]{{0,{grid.MAX_LEVEL}}}")


@dataclass(frozen=True)
class CatalogFilters:
    """An empty value means no filter on that field."""

    q: str = ""
    data_class: str = ""
    theme: str = ""
    district: str = ""
    bbox: tuple[float, float, float, float] | None = None  # lon_min, lat_min, lon_max, lat_max
    cell: str = ""  # a grid code at any level

    @property
    def spatial(self) -> bool:
        return self.bbox is not None or bool(self.cell)


def parse_filters(
    params: Mapping[str, str], *, data_classes: Iterable[str], themes: Iterable[str]
) -> CatalogFilters:
    """The filters of a query string; a bad value raises InvalidInput naming its parameter."""
    names = ("q", "data_class", "theme", "district", "bbox", "cell")
    values = {name: (params.get(name) or "").strip() for name in names}
    for name in ("q", "district"):
        if len(values[name]) > MAX_TEXT:
            raise InvalidInput(name, gettext("use at most %(max_text)s characters") % {"max_text": MAX_TEXT})
    for name, allowed in (("data_class", list(data_classes)), ("theme", list(themes))):
        if values[name] and values[name] not in allowed:
            raise InvalidInput(name, gettext("%(values)r is not one of %(allowed)s")
                                     % {"values": values[name], "allowed": ', '.join(allowed)})
    if values["cell"] and not _CODE.fullmatch(values["cell"]):
        raise InvalidInput(
            "cell", gettext("%(cell)r is not a grid code (G and up to %(grid_max_level)s digits 0-7)")
                    % {"cell": values['cell'][:40], "grid_max_level": grid.MAX_LEVEL}
        )
    return CatalogFilters(
        q=values["q"], data_class=values["data_class"], theme=values["theme"], district=values["district"],
        bbox=parse_bbox(values["bbox"]) if values["bbox"] else None, cell=values["cell"],
    )


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'lon_min,lat_min,lon_max,lat_max' in degrees (CGCS2000, as the extents are)."""
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidInput("bbox", gettext("give four numbers: lon_min,lat_min,lon_max,lat_max"))
    try:
        lon0, lat0, lon1, lat1 = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput("bbox", gettext("give four numbers: lon_min,lat_min,lon_max,lat_max")) from None
    if not all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1)):
        raise InvalidInput("bbox", gettext("the numbers must be finite"))
    if not (-180 <= lon0 <= 180 and -180 <= lon1 <= 180):
        raise InvalidInput("bbox", gettext("longitudes must be within [-180, 180]"))
    if not (-90 <= lat0 <= 90 and -90 <= lat1 <= 90):
        raise InvalidInput("bbox", gettext("latitudes must be within [-90, 90]"))
    if lon1 < lon0 or lat1 < lat0:
        raise InvalidInput(
            "bbox", gettext("the minimum must not exceed the maximum (boxes across the antimeridian are "
                            "not supported)")
        )
    return lon0, lat0, lon1, lat1


def boxes_intersect(extent: Sequence[float], bbox: Sequence[float]) -> bool:
    """Whether two closed [lon_min, lat_min, lon_max, lat_max] boxes share a point."""
    if len(extent) != 4:
        return False
    return extent[0] <= bbox[2] and bbox[0] <= extent[2] and extent[1] <= bbox[3] and bbox[1] <= extent[3]


def covers_cell(cells: Sequence[str], code: str) -> bool:
    """Whether a sorted list of same-level cells meets `code`'s cell: a covered cell lies in
    it (code is their prefix) or it lies in a covered cell (a covered cell is its prefix)."""
    i = bisect_left(cells, code)
    if i < len(cells) and cells[i].startswith(code):
        return True
    # Among same-level cells, the only one that can be a prefix of code sorts just before it.
    return i > 0 and code.startswith(cells[i - 1])


def cell_boxes(cells: Sequence[str]) -> np.ndarray:
    """The cells' footprints (lon/lat boxes), as shapely geometries."""
    if not cells:
        return np.array([], dtype=object)
    lon0, lat0, _, lon1, lat1, _ = grid.decode(np.asarray(cells))
    return np.atleast_1d(shapely.box(lon0, lat0, lon1, lat1))
