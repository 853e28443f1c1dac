"""The catalogue as DCAT in JSON-LD (the vocabulary that CKAN and other open-data portals
harvest), built from the plain records of catalog.metadata.

Coordinates are CGCS2000 longitude/latitude, written as GeoSPARQL WKT without a CRS IRI
(so in CRS84 order, as CKAN's DCAT reader expects): CGCS2000 and WGS84 differ by centimetres,
far less than an extent or an 0.8 km grid cell.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import shapely

from .query import cell_boxes

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "locn": "http://www.w3.org/ns/locn#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "miliao": "urn:miliao:",
}
MEDIA_TYPE = "application/ld+json"
# The EU access-rights vocabulary that DCAT-AP uses, by data class.
_ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
ACCESS_RIGHTS = {
    "open": _ACCESS + "PUBLIC", "conditional": _ACCESS + "RESTRICTED", "compute_only": _ACCESS + "NON_PUBLIC",
}
FORMATS = {
    "geoparquet": ("GeoParquet", "application/vnd.apache.parquet"),
    "geopackage": ("GeoPackage", "application/geopackage+sqlite3"),
    "geojson": ("GeoJSON", "application/geo+json"),
}
CATALOG_TITLE = {"zh": "米料空间数据目录", "en": "Miliao spatial data catalogue"}
CATALOG_DESCRIPTION = {
    "zh": "上海规划资源空间米料：开放、有条件开放与可用不可见的数据集。",
    "en": "Spatial corpora of Shanghai's planning bureaus: open, conditional and compute-only datasets.",
}


def catalog_document(records: Iterable[dict], *, catalog_url: str, homepage: str) -> dict:
    """A dcat:Catalog holding every record as a dcat:Dataset."""
    datasets = [dataset_node(r) for r in records]
    return {
        "@context": CONTEXT,
        "@id": catalog_url,
        "@type": "dcat:Catalog",
        "dct:title": texts(CATALOG_TITLE),
        "dct:description": texts(CATALOG_DESCRIPTION),
        "foaf:homepage": {"@id": homepage},
        "dcat:dataset": datasets,
    }


def dataset_document(record: dict) -> dict:
    """One dataset as a document of its own."""
    return {"@context": CONTEXT, **dataset_node(record)}


def dataset_node(record: dict) -> dict:
    owner = record["owner"]
    node = {
        "@id": record["page_url"],
        "@type": "dcat:Dataset",
        "dct:identifier": record["slug"],
        "dct:title": texts({"zh": record["title"], "en": record["title_en"]}),
        "dct:description": texts({"zh": record["description"], "en": record["description_en"]}),
        "dct:publisher": {
            "@id": f"urn:miliao:organisation:{owner}",
            "@type": "foaf:Organization",
            "dct:identifier": owner,
            "foaf:name": texts(record["owner_name"]),
        },
        "dcat:theme": {
            "@id": f"urn:miliao:theme:{record['theme']}",
            "@type": "skos:Concept",
            "skos:prefLabel": texts(record["theme_label"]),
        },
        "dcat:keyword": list(record["keywords"]),
        "dcat:landingPage": {"@id": record["page_url"]},
        "dct:accessRights": {"@id": ACCESS_RIGHTS[record["data_class"]]},
        "dct:issued": date_time(record["created_at"]),
        "dct:modified": date_time(record["updated_at"]),
        "miliao:dataClass": record["data_class"],
        "dcat:distribution": distributions(record),
    }
    latest = record["latest_version"]
    if latest:
        node["dcat:version"] = str(latest["version"])
    spatial = location(record)
    if spatial:
        node["dct:spatial"] = spatial
    return node


def location(record: dict) -> dict | None:
    """A dct:Location: the district's name, the covered grid cells' footprint as the
    geometry (the extent's box when no cells are known) and the extent as dcat:bbox."""
    latest, place = record["latest_version"], {"@type": "dct:Location"}
    if record["district"]:
        place["locn:geographicName"] = record["district"]
    if latest and len(latest["extent"]) == 4:
        box = box_wkt(latest["extent"])
        place["locn:geometry"] = wkt_literal(cells_wkt(latest.get("cells") or []) or box)
        place["dcat:bbox"] = wkt_literal(box)
    return place if len(place) > 1 else None


def distributions(record: dict) -> list[dict]:
    """One dcat:Distribution per output of each published release. Open data has a download
    URL; conditional data only an access URL (its files need a licence); compute-only data
    has no distribution, since nothing of it leaves the platform."""
    if record["data_class"] == "compute_only":
        return []
    found = []
    for release in record["releases"]:
        if release["status"] != "published":
            continue
        for fmt in release["formats"]:
            name, media_type = FORMATS.get(fmt, (fmt, "application/octet-stream"))
            output = release["outputs"][fmt]
            dist = {
                "@id": f"{release['url']}#{fmt}",
                "@type": "dcat:Distribution",
                "dct:title": texts({"zh": f"发布 #{release['id']}（v{release['version']}）{name}",
                                    "en": f"Release #{release['id']} (v{release['version']}) {name}"}),
                "dct:format": name,
                "dcat:mediaType": media_type,
                "dct:issued": date_time(release["published_at"]),
                "dcat:accessURL": {"@id": release["url"]},
                "miliao:release": release["id"],
                "miliao:corpusVersion": release["version"],
            }
            if output.get("bytes") is not None:
                dist["dcat:byteSize"] = {"@value": str(output["bytes"]), "@type": "xsd:nonNegativeInteger"}
            if record["data_class"] == "open":
                # The release page until the access engineer's download endpoint exists.
                dist["dcat:downloadURL"] = {"@id": release["url"]}
            found.append(dist)
    return found


def texts(by_language: dict[str, str]) -> list[dict]:
    """Language-tagged literals, leaving out the empty ones."""
    return [{"@value": v, "@language": lang} for lang, v in by_language.items() if v]


def date_time(value: datetime | None) -> dict | None:
    return None if value is None else {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def wkt_literal(wkt: str) -> dict:
    return {"@value": wkt, "@type": "gsp:wktLiteral"}


def box_wkt(extent: Sequence[float]) -> str:
    return shapely.to_wkt(shapely.box(*extent), rounding_precision=7)


def cells_wkt(cells: Sequence[str]) -> str:
    """The footprint of the grid cells, merged: a close outline of where a corpus lies."""
    if not cells:
        return ""
    return shapely.to_wkt(shapely.union_all(cell_boxes(cells)), rounding_precision=7)
