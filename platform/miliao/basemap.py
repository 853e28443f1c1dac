"""The map's basemap, from the environment: a tile service a city points at its own server
(天地图, a WMTS in KVP form, any XYZ template), or none, and then the portal draws its own
open layers (portal.map_views.basemap). No Django import: settings read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Basemap:
    url: str = ""  # an XYZ/WMTS tile template with {z}, {x}, {y} and optionally {s}
    attribution: str = ""
    subdomains: tuple[str, ...] = field(default_factory=tuple)
    max_zoom: int = 18

    def hosts(self) -> list[str]:
        """The origins the browser fetches tiles from, for the CSP's img-src: exactly one per
        subdomain, nothing wider."""
        if not self.url:
            return []
        parts = urlsplit(self.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if "{s}" not in origin:
            return [origin]
        return [origin.replace("{s}", s) for s in self.subdomains]

    def for_page(self) -> dict | None:
        """What static/miliao/map.js needs to draw it (Leaflet's L.tileLayer options)."""
        if not self.url:
            return None
        return {"url": self.url, "attribution": self.attribution, "subdomains": list(self.subdomains),
                "maxZoom": self.max_zoom}


def basemap_from(url: str, attribution: str = "", subdomains: str = "", max_zoom: int = 18) -> Basemap:
    """A Basemap from the environment's text, or ValueError naming the variable at fault."""
    url = url.strip()
    if not url:
        return Basemap()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"MILIAO_MAP_BASEMAP_URL must be an http(s) tile URL, not {url!r}")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
    if missing:
        raise ValueError(f"MILIAO_MAP_BASEMAP_URL must hold {', '.join(missing)} (a tile template): {url!r}")
    names = tuple(s.strip() for s in subdomains.split(",") if s.strip())
    if "{s}" in url and not names:
        names = ("a", "b", "c")  # Leaflet's default
    if "{s}" in parts.path or "{s}" in parts.query:
        raise ValueError("MILIAO_MAP_BASEMAP_URL: {s} (the subdomain) belongs in the host name only")
    if not all(ch.isalnum() or ch == "-" for name in names for ch in name):
        raise ValueError(f"MILIAO_MAP_BASEMAP_SUBDOMAINS must be host name labels, comma-separated: {subdomains!r}")
    return Basemap(url=url, attribution=attribution.strip(), subdomains=names, max_zoom=max_zoom)
