"""The catalogue as DCAT in JSON-LD (the vocabulary that CKAN and other open-data portals
harvest), built from the plain records of discovery.metadata.

Coordinates are CGCS2000 longitude/latitude, written as GeoSPARQL WKT without a CRS IRI
(so in CRS84 order, as CKAN's DCAT reader expects): CGCS2000 and WGS84 differ by centimetres,
far less than an extent or an 0.8 km grid cell.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import rdflib
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
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "hydra": "http://www.w3.org/ns/hydra/core#",
    "miliao": "urn:miliao:",
}
MEDIA_TYPE = "application/ld+json"
TURTLE = "text/turtle"
# The EU access-rights vocabulary that DCAT-AP uses, by data class.
_ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
ACCESS_RIGHTS = {
    "open": _ACCESS + "PUBLIC", "conditional": _ACCESS + "RESTRICTED", "compute_only": _ACCESS + "NON_PUBLIC",
}
# dct:format from the EU file-type vocabulary, dcat:mediaType from IANA's register.
FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"
IANA = "https://www.iana.org/assignments/media-types/"
FORMATS = {
    "geoparquet": ("GeoParquet", "PARQUET", "application/vnd.apache.parquet"),
    "geopackage": ("GeoPackage", "GPKG", "application/geopackage+sqlite3"),
    "geojson": ("GeoJSON", "GEOJSON", "application/geo+json"),
}
UNKNOWN_FORMAT = ("", "BIN", "application/octet-stream")
# Licences from the EU licence vocabulary: open releases are CC BY 4.0, the catalogue's own
# metadata CC0. Conditional data is licensed to each applicant on the terms of its
# application (an ODRL policy), which its landing page explains.
_LICENCE = "http://publications.europa.eu/resource/authority/licence/"
OPEN_DATA_LICENCE = _LICENCE + "CC_BY_4_0"
METADATA_LICENCE = _LICENCE + "CC0"
CATALOG_TITLE = {"zh": "米料空间数据目录", "en": "Miliao spatial data catalogue"}
CATALOG_DESCRIPTION = {
    "zh": "上海规划资源空间米料：开放、有条件开放与可用不可见的数据集。",
    "en": "Spatial corpora of Shanghai's planning bureaus: open, conditional and compute-only datasets.",
}
CATALOG_PUBLISHER = {"zh": "米料平台运营方", "en": "Operator of the Miliao platform"}
CONDITIONAL_LICENCE = {
    "zh": "按申请授予的数据许可（ODRL 策略），见数据集页面。",
    "en": "A licence granted per application (an ODRL policy); see the dataset's page.",
}


@dataclass(frozen=True)
class Page:
    """Where a page of the catalogue lies among all of them (Hydra paging, as CKAN's
    harvester follows it): ``url(n)`` is the absolute URL of page n."""

    number: int
    size: int
    total: int
    url: Callable[[int], str]

    @property
    def last(self) -> int:
        return max(1, -(-self.total // self.size))


def catalog_document(
    records: Iterable[dict], *, catalog_url: str, homepage: str, page: Page | None = None,
    download_url: Callable[[int, str], str | None] | None = None,
) -> dict:
    """A dcat:Catalog holding the records as dcat:Datasets (one page of them with ``page``).
    ``download_url(release_id, fmt)`` is where a file of an open release is downloaded
    (None where that format is not served as a file)."""
    datasets = [dataset_node(r, download_url=download_url) for r in records]
    document = {
        "@context": CONTEXT,
        "@id": catalog_url,
        "@type": "dcat:Catalog",
        "dct:title": texts(CATALOG_TITLE),
        "dct:description": texts(CATALOG_DESCRIPTION),
        "dct:publisher": agent(homepage + "#publisher", CATALOG_PUBLISHER),
        "dct:license": {"@id": METADATA_LICENCE, "@type": "dct:LicenseDocument"},
        "foaf:homepage": {"@id": homepage, "@type": "foaf:Document"},
        "dcat:dataset": datasets,
    }
    if page is not None:
        document["hydra:view"] = paging(page)
    return document


def paging(page: Page) -> dict:
    """The page's place in the collection, in both the current Hydra terms (first, next,
    previous, last) and the older PagedCollection ones (firstPage...), as ckanext-dcat writes
    and reads them."""
    view = {
        "@id": page.url(page.number),
        "@type": ["hydra:PartialCollectionView", "hydra:PagedCollection"],
        "hydra:totalItems": integer(page.total),
        "hydra:itemsPerPage": integer(page.size),
    }
    links = {"first": 1, "last": page.last}
    if page.number > 1:
        links["previous"] = min(page.number - 1, page.last)
    if page.number < page.last:
        links["next"] = page.number + 1
    for name, number in links.items():
        view[f"hydra:{name}"] = {"@id": page.url(number)}
        view[f"hydra:{name}Page"] = {"@id": page.url(number)}
    return view


def dataset_document(record: dict, *, download_url: Callable[[int, str], str | None] | None = None) -> dict:
    """One dataset as a document of its own."""
    return {"@context": CONTEXT, **dataset_node(record, download_url=download_url)}


def dataset_node(record: dict, *, download_url: Callable[[int, str], str | None] | None = None) -> dict:
    owner = record["owner"]
    bureau = agent(f"urn:miliao:organisation:{owner}", record["owner_name"])
    bureau["dct:identifier"] = owner
    node = {
        "@id": record["page_url"],
        "@type": "dcat:Dataset",
        "dct:identifier": record["slug"],
        "dct:title": texts({"zh": record["title"], "en": record["title_en"]}),
        "dct:description": texts({"zh": record["description"] or record["title"],
                                  "en": record["description_en"] or record["title_en"]}),
        "dct:publisher": bureau,
        "dcat:contactPoint": contact_point(record),
        "dcat:theme": {
            "@id": f"urn:miliao:theme:{record['theme']}",
            "@type": "skos:Concept",
            "skos:prefLabel": texts(record["theme_label"]),
        },
        "dcat:keyword": list(record["keywords"]),
        "dcat:landingPage": {"@id": record["page_url"], "@type": "foaf:Document"},
        "dct:accessRights": {"@id": ACCESS_RIGHTS[record["data_class"]], "@type": "dct:RightsStatement"},
        "dct:issued": date_time(record["created_at"]),
        "dct:modified": date_time(record["updated_at"]),
        "miliao:dataClass": record["data_class"],
        "dcat:distribution": distributions(record, download_url=download_url),
    }
    if record["data_class"] == "open":
        node["dct:license"] = {"@id": OPEN_DATA_LICENCE, "@type": "dct:LicenseDocument"}
    latest = record["latest_version"]
    if latest:
        node["dcat:version"] = str(latest["version"])
    spatial = location(record)
    if spatial:
        node["dct:spatial"] = spatial
    return node


def agent(iri: str, name: dict[str, str]) -> dict:
    """A publisher: a foaf:Agent (and Organization) with its names."""
    return {"@id": iri, "@type": ["foaf:Agent", "foaf:Organization"], "foaf:name": texts(name)}


def contact_point(record: dict) -> dict:
    """The owning bureau as a vCard organisation, reached through the dataset's page (where
    readers apply for it and see its stewards' decisions)."""
    return {
        "@id": f"urn:miliao:organisation:{record['owner']}#contact",
        "@type": ["vcard:Kind", "vcard:Organization"],
        "vcard:fn": record["owner_name"].get("zh") or record["owner"],
        "vcard:organization-name": texts(record["owner_name"]),
        "vcard:hasURL": {"@id": record["page_url"]},
    }


def location(record: dict) -> dict | None:
    """A dct:Location: the district's name, the covered grid cells' footprint as a
    locn:Geometry (WKT and GeoJSON; the extent's box when no cells are known) and the
    extent as dcat:bbox."""
    latest, place = record["latest_version"], {"@type": "dct:Location"}
    if record["district"]:
        place["locn:geographicName"] = record["district"]
        place["skos:prefLabel"] = {"@value": record["district"], "@language": "zh"}
    if latest and len(latest["extent"]) == 4:
        box = shapely.box(*latest["extent"])
        cells = latest.get("cells") or []
        footprint = cells_footprint(cells) if cells else box
        place["locn:geometry"] = {
            "@type": ["locn:Geometry", "gsp:Geometry"],
            "gsp:asWKT": wkt_literal(shapely.to_wkt(footprint, rounding_precision=7)),
            "gsp:asGeoJSON": {"@value": shapely.to_geojson(footprint), "@type": "gsp:geoJSONLiteral"},
        }
        place["dcat:bbox"] = wkt_literal(shapely.to_wkt(box, rounding_precision=7))
    return place if len(place) > 1 else None


def distributions(record: dict, *, download_url: Callable[[int, str], str | None] | None = None) -> list[dict]:
    """One dcat:Distribution per output of each published release. Open data has a download
    URL (the file itself, for the formats ``download_url`` serves); conditional data only an
    access URL (its files need a licence); compute-only data has no distribution, since
    nothing of it leaves the platform."""
    if record["data_class"] == "compute_only":
        return []
    is_open = record["data_class"] == "open"
    licence = (
        {"@id": OPEN_DATA_LICENCE, "@type": "dct:LicenseDocument"} if is_open else
        {"@id": record["page_url"] + "#licence", "@type": "dct:LicenseDocument",
         "dct:title": texts(CONDITIONAL_LICENCE)}
    )
    found = []
    for release in record["releases"]:
        if release["status"] != "published":
            continue
        for fmt in release["formats"]:
            name, file_type, media_type = FORMATS.get(fmt, UNKNOWN_FORMAT)
            name = name or fmt
            output = release["outputs"][fmt]
            dist = {
                "@id": f"{release['url']}#{fmt}",
                "@type": "dcat:Distribution",
                "dct:title": texts({"zh": f"发布 #{release['id']}（v{release['version']}）{name}",
                                    "en": f"Release #{release['id']} (v{release['version']}) {name}"}),
                "dct:format": {"@id": FILE_TYPE + file_type, "@type": "dct:MediaTypeOrExtent"},
                "dcat:mediaType": {"@id": IANA + media_type, "@type": "dct:MediaType"},
                "dct:license": licence,
                "dct:issued": date_time(release["published_at"]),
                "dcat:accessURL": {"@id": release["url"]},
                "miliao:release": release["id"],
                "miliao:corpusVersion": release["version"],
            }
            if output.get("bytes") is not None:
                dist["dcat:byteSize"] = integer(output["bytes"])
            download = download_url(release["id"], fmt) if is_open and download_url else None
            if download:
                dist["dcat:downloadURL"] = {"@id": download}
            found.append(dist)
    return found


def turtle(document: dict) -> str:
    """A JSON-LD document (with its inline context) as RDF Turtle."""
    graph = rdflib.Graph().parse(data=json.dumps(document, default=str), format="json-ld")
    for prefix, namespace in CONTEXT.items():
        graph.bind(prefix, namespace)
    return graph.serialize(format="turtle")


def texts(by_language: dict[str, str]) -> list[dict]:
    """Language-tagged literals, leaving out the empty ones."""
    return [{"@value": v, "@language": lang} for lang, v in by_language.items() if v]


def date_time(value: datetime | None) -> dict | None:
    return None if value is None else {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def integer(value: int) -> dict:
    return {"@value": str(value), "@type": "xsd:nonNegativeInteger"}


def wkt_literal(wkt: str) -> dict:
    return {"@value": wkt, "@type": "gsp:wktLiteral"}


def cells_footprint(cells: Sequence[str]) -> shapely.Geometry:
    """The footprint of the grid cells, merged: a close outline of where a corpus lies."""
    return shapely.union_all(cell_boxes(cells))
