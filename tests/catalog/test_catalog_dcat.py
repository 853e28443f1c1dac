"""The catalogue as DCAT JSON-LD: well-formed JSON-LD (every term a keyword or a prefix the
context defines, literals shaped as value objects), every dataset present with its
bilingual titles, publisher, theme, spatial extent, dates, keywords and class, and published
releases as distributions. It conforms to DCAT-AP 3 (pyshacl with the official shapes), a
harvester reads it anonymously page by page as ckanext-dcat does (rdflib, Hydra paging), open
distributions download their files, and pages are cacheable (ETag, 304) in a number of SQL
queries that does not grow with the catalogue."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import rdflib
import shapely
from django.db import connection
from django.test.utils import CaptureQueriesContext

from discovery.metadata import public_extent

from catalog_support import add_corpus, describe
from conftest import add_release, api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]

KEYWORDS = {"@context", "@id", "@type", "@value", "@language"}


def check_jsonld(node, prefixes, path="$"):
    """Structural JSON-LD checks without a JSON-LD processor: keys are keywords or compact
    IRIs with a defined prefix; a value object holds only @value with @language or @type;
    @type names use defined prefixes."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_jsonld(item, prefixes, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    if "@value" in node:
        assert set(node) <= {"@value", "@language", "@type"}, path
        assert not ({"@language", "@type"} <= set(node)), f"{path}: a literal has a language or a type"
        assert isinstance(node["@value"], str) and node["@value"], path
        if "@type" in node:
            assert node["@type"].split(":")[0] in prefixes, path
        return
    for key, value in node.items():
        if key == "@context":
            continue
        assert key in KEYWORDS or key.split(":")[0] in prefixes, f"{path}: undefined term {key!r}"
        if key == "@type":
            types = value if isinstance(value, list) else [value]
            assert all(t.split(":")[0] in prefixes for t in types), f"{path}: type {value!r}"
        if key == "@id":
            assert value.startswith(("http://", "https://", "urn:")), f"{path}: id {value!r}"
        check_jsonld(value, prefixes, f"{path}.{key}")


def get_document(client, path, **headers):
    response = client.get(path, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/ld+json")
    document = json.loads(response.content)
    context = document["@context"]
    assert {"dcat", "dct", "foaf", "locn", "xsd"} <= set(context)
    assert context["dcat"] == "http://www.w3.org/ns/dcat#" and context["dct"] == "http://purl.org/dc/terms/"
    check_jsonld(document, set(context))
    return document


@pytest.fixture
def dcat_world(world):
    w = describe(add_release(world))
    w.rooms_corpus = add_corpus(w, w.rooms, seed=5)
    return w


def by_id(document):
    return {d["dct:identifier"]: d for d in document["dcat:dataset"]}


def test_the_catalog_holds_every_dataset_with_its_metadata(dcat_world):
    from catalog.models import Dataset

    w = dcat_world
    document = get_document(api_client(w.applicant), "/api/datasets/dcat/")
    assert document["@type"] == "dcat:Catalog" and document["@id"].endswith("/api/datasets/dcat/")
    datasets = by_id(document)
    assert set(datasets) == set(Dataset.objects.values_list("slug", flat=True))
    assert all(d["@type"] == "dcat:Dataset" for d in datasets.values())

    roads = datasets["huangpu-roads"]
    assert {"@value": "道路段", "@language": "zh"} in roads["dct:title"]
    assert {"@value": "Road segments", "@language": "en"} in roads["dct:title"]
    assert {"@value": "Road centre lines", "@language": "en"} in roads["dct:description"]
    publisher = roads["dct:publisher"]
    assert "foaf:Agent" in publisher["@type"] and publisher["dct:identifier"] == "sh-planning"
    assert {"@value": "sh-planning 名称", "@language": "zh"} in publisher["foaf:name"]
    contact = roads["dcat:contactPoint"]
    assert "vcard:Kind" in contact["@type"] and contact["vcard:fn"] == "sh-planning 名称"
    assert contact["vcard:hasURL"]["@id"] == roads["dcat:landingPage"]["@id"]
    assert roads["dct:license"]["@id"] == "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0"
    assert "dct:license" not in datasets["pudong-pipes"]  # conditional: licensed per application
    assert "foaf:Agent" in document["dct:publisher"]["@type"] and document["dct:publisher"]["foaf:name"]
    assert roads["dcat:theme"]["@id"] == "urn:miliao:theme:transport"
    assert {"@value": "交通", "@language": "zh"} in roads["dcat:theme"]["skos:prefLabel"]
    assert roads["dcat:keyword"] == ["交通", "roads"]
    assert roads["miliao:dataClass"] == "open" and roads["dct:accessRights"]["@id"].endswith("/PUBLIC")
    assert datasets["district-rooms"]["dct:accessRights"]["@id"].endswith("/NON_PUBLIC")
    assert roads["dct:modified"] == {"@value": w.corpus.created_at.isoformat(), "@type": "xsd:dateTime"}
    assert roads["dcat:version"] == "1" and roads["dcat:landingPage"]["@id"].endswith("/datasets/huangpu-roads/")
    assert roads["@id"] == roads["dcat:landingPage"]["@id"]


def test_spatial_extent_is_wkt_of_the_cells_and_the_bbox(dcat_world):
    w = dcat_world
    datasets = by_id(get_document(api_client(w.auditor), "/api/datasets/dcat/"))
    spatial = datasets["huangpu-roads"]["dct:spatial"]
    assert spatial["@type"] == "dct:Location" and spatial["locn:geographicName"] == "黄浦区"
    geometry = spatial["locn:geometry"]
    assert "locn:Geometry" in geometry["@type"]
    assert geometry["gsp:asWKT"]["@type"] == spatial["dcat:bbox"]["@type"] == "gsp:wktLiteral"
    assert geometry["gsp:asGeoJSON"]["@type"] == "gsp:geoJSONLiteral"
    bbox = shapely.from_wkt(spatial["dcat:bbox"]["@value"])
    # The extent is given to the cell (discovery.metadata.public_extent), never the corpus's own bounds.
    assert bbox.bounds == pytest.approx(tuple(public_extent(w.corpus.extent, 16)), abs=1e-7)
    footprint = shapely.from_wkt(geometry["gsp:asWKT"]["@value"])
    assert shapely.from_geojson(geometry["gsp:asGeoJSON"]["@value"]).equals_exact(footprint, 1e-7)
    assert footprint.bounds == pytest.approx(bbox.bounds, abs=1e-7)  # the cells span the bbox
    assert footprint.covers(shapely.box(*w.corpus.extent))  # the cells hold the corpus
    assert footprint.area < 10 * bbox.area + 0.001  # and are a coarse outline, not the whole city
    # A dataset without versions has only its district as a place; one without either, no place.
    assert datasets["pudong-pipes"]["dct:spatial"] == {
        "@type": "dct:Location", "locn:geographicName": "浦东新区", "skos:prefLabel": {"@value": "浦东新区", "@language": "zh"},
    }
    describe_none = api_client(w.steward).patch("/api/datasets/pudong-pipes/", {"district": ""}, format="json")
    assert describe_none.status_code == 200
    datasets = by_id(get_document(api_client(w.auditor), "/api/datasets/dcat/"))
    assert "dct:spatial" not in datasets["pudong-pipes"]


def test_published_releases_become_distributions(dcat_world):
    from releases import actions as release_actions

    w = dcat_world
    client = api_client(w.data_holder)
    assert by_id(get_document(client, "/api/datasets/dcat/"))["huangpu-roads"]["dcat:distribution"] == []
    release_actions.publish_release(actor=w.steward, release=w.release)
    distributions = by_id(get_document(client, "/api/datasets/dcat/"))["huangpu-roads"]["dcat:distribution"]
    (dist,) = distributions  # the default policy's one output
    assert dist["dct:format"]["@id"] == "http://publications.europa.eu/resource/authority/file-type/PARQUET"
    assert dist["dcat:mediaType"]["@id"] == "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet"
    assert dist["dct:license"]["@id"].endswith("/licence/CC_BY_4_0")
    page = f"/releases/{w.release.pk}/"
    assert dist["@type"] == "dcat:Distribution" and dist["dcat:accessURL"]["@id"].endswith(page)
    # Open data: the file itself, which answers the download (test_open_distributions_download_their_files).
    assert dist["dcat:downloadURL"]["@id"].endswith(f"/api/releases/{w.release.pk}/files/geoparquet/")
    assert dist["dcat:byteSize"]["@value"] == str(w.release.outputs["geoparquet"]["bytes"])
    assert dist["dct:issued"]["@type"] == "xsd:dateTime" and dist["miliao:corpusVersion"] == 1


def test_one_dataset_as_its_own_document(dcat_world):
    w = dcat_world
    document = get_document(api_client(w.applicant), "/api/datasets/district-rooms/dcat/")
    assert document["@type"] == "dcat:Dataset" and document["dct:identifier"] == "district-rooms"
    assert document["miliao:dataClass"] == "compute_only" and document["dcat:distribution"] == []
    assert {"@value": "Building rooms", "@language": "en"} in document["dct:title"]
    assert shapely.from_wkt(document["dct:spatial"]["dcat:bbox"]["@value"]).bounds == pytest.approx(
        tuple(public_extent(w.rooms_corpus.extent, 16)), abs=1e-7
    )
    assert api_client(w.applicant).get("/api/datasets/no-such-dataset/dcat/").status_code == 404


def test_the_catalog_takes_the_search_filters(dcat_world):
    w = dcat_world
    document = get_document(api_client(w.applicant), "/api/datasets/dcat/?data_class=conditional")
    assert set(by_id(document)) == {"pudong-pipes", "sz-parcels"}
    document = get_document(api_client(w.applicant), "/api/datasets/dcat/?q=rent")
    assert set(by_id(document)) == {"district-rooms"}


def test_a_json_client_gets_the_same_document_as_json(dcat_world):
    response = api_client(dcat_world.applicant).get("/api/datasets/dcat/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert response.json()["@type"] == "dcat:Catalog"


@pytest.mark.parametrize("path", ["/api/datasets/dcat/", "/api/datasets/huangpu-roads/dcat/"])
def test_every_role_and_anonymous_readers_read_dcat(world, path):
    assert api_client().get(path).status_code == 200
    for user in world.by_role.values():
        assert api_client(user).get(path).status_code == 200


def test_anonymous_readers_are_throttled_per_address_and_logged_in_ones_are_not(world, monkeypatch):
    from discovery.api import OpenCatalogThrottle

    monkeypatch.setattr(OpenCatalogThrottle, "rate", "3/min")
    statuses = [api_client().get("/api/datasets/dcat/", REMOTE_ADDR="198.51.100.7").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = api_client().get("/api/datasets/dcat/", REMOTE_ADDR="198.51.100.7")
    assert int(refused["Retry-After"]) > 0 and refused.json()["detail"]
    assert api_client().get("/api/datasets/dcat/", REMOTE_ADDR="198.51.100.8").status_code == 200  # another address
    applicant = api_client(world.by_role["applicant"])
    assert [applicant.get("/api/datasets/dcat/", REMOTE_ADDR="198.51.100.7").status_code for _ in range(5)] == [200] * 5


def test_distributions_follow_the_data_class():
    """Plain data in, DCAT out: open data has a download URL, conditional data only an
    access URL, compute-only data no distribution at all."""
    from datetime import UTC, datetime

    from discovery import dcat

    release = {"id": 7, "version": 2, "status": "published", "published_at": datetime(2026, 1, 2, tzinfo=UTC),
               "url": "https://portal.example/releases/7/", "formats": ["geojson", "geoparquet"],
               "outputs": {"geojson": {"bytes": 10}, "geoparquet": {"bytes": 5}}}
    built = {**release, "id": 8, "status": "built"}

    def record(data_class):
        return {"data_class": data_class, "releases": [release, built], "page_url": "https://portal.example/d/"}

    def files(release_id, fmt):
        return f"https://portal.example/api/releases/{release_id}/files/{fmt}/" if fmt == "geojson" else None

    open_ = dcat.distributions(record("open"), download_url=files)
    assert [d["dct:format"]["@id"].rsplit("/", 1)[1] for d in open_] == ["GEOJSON", "PARQUET"]
    assert [d["dcat:mediaType"]["@id"].split("media-types/")[1] for d in open_] == [
        "application/geo+json", "application/vnd.apache.parquet"]
    # A download URL where that format is served as a file; an access URL always.
    assert open_[0]["dcat:downloadURL"]["@id"] == files(7, "geojson") and "dcat:downloadURL" not in open_[1]
    assert all(d["dcat:accessURL"]["@id"] == release["url"] for d in open_)
    conditional = dcat.distributions(record("conditional"), download_url=files)
    assert len(conditional) == 2
    assert all("dcat:downloadURL" not in d and d["dcat:accessURL"] for d in conditional)
    assert dcat.distributions(record("compute_only")) == []


# --- DCAT-AP 3 conformance, harvesting, downloads, caching and cost ------------------------

SHAPES = Path(__file__).resolve().parents[2] / "platform" / "discovery" / "shapes" / "dcat-ap-SHACL.ttl"
DCAT, DCT, HYDRA = (rdflib.Namespace(c) for c in (
    "http://www.w3.org/ns/dcat#", "http://purl.org/dc/terms/", "http://www.w3.org/ns/hydra/core#"))
RDF_FORMATS = {"application/ld+json": "json-ld", "text/turtle": "turtle"}


def rdf_graph(response) -> rdflib.Graph:
    """The response parsed as a harvester parses it: by the media type it declares."""
    assert response.status_code == 200, response.content
    return rdflib.Graph().parse(data=response.content, format=RDF_FORMATS[response["Content-Type"].split(";")[0]])


@pytest.fixture
def published_world(dcat_world):
    from releases import actions as release_actions

    release_actions.publish_release(actor=dcat_world.steward, release=dcat_world.release)
    return dcat_world


def test_a_published_catalog_conforms_to_dcat_ap_3_and_its_files_download(published_world, tmp_path):
    """Every dataset class, a published open release with its distribution and a corpus with
    covered cells, validated with pyshacl against the official DCAT-AP 3.0.1 shapes. The
    open distribution's dcat:downloadURL answers the file itself to any logged-in reader (and
    records the download); anonymous callers are asked to log in; HEAD records nothing."""
    import pyarrow.parquet as pq
    import pyshacl
    from access.models import Download

    shapes = rdflib.Graph().parse(SHAPES)
    graph = rdf_graph(api_client(published_world.auditor).get("/api/datasets/dcat/"))
    assert len(set(graph.subjects(rdflib.RDF.type, DCAT.Dataset))) == 4
    assert len(set(graph.subjects(rdflib.RDF.type, DCAT.Distribution))) == 1
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report
    # The shapes do catch what the issue found: a catalogue without its publisher.
    catalog = next(graph.subjects(rdflib.RDF.type, DCAT.Catalog))
    graph.remove((catalog, DCT.publisher, None))
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert not conforms and "publisher" in report

    w = published_world
    document = get_document(api_client(), "/api/datasets/huangpu-roads/dcat/")
    url = document["dcat:distribution"][0]["dcat:downloadURL"]["@id"]
    assert api_client().get(url).status_code == 401
    client = api_client(w.applicant)
    assert client.head(url).status_code == 200 and not Download.objects.exists()
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apache.parquet"
    path = tmp_path / "download.parquet"
    path.write_bytes(b"".join(response.streaming_content))
    assert pq.read_metadata(path).num_rows > 0 and b"geo" in pq.read_metadata(path).metadata
    assert Download.objects.get().user == w.applicant
    assert "format" in client.get(url.replace("geoparquet", "shapefile")).json()


def harvest(client, url: str, accept: str) -> tuple[list[rdflib.Graph], set[str]]:
    """Fetch a catalogue page by page as ckanext-dcat's RDF harvester does: parse each page,
    take its datasets, follow hydra:next of the hydra:PartialCollectionView or
    hydra:PagedCollection (RDFParser.next_page)."""
    pages, identifiers = [], set()
    while url:
        graph = rdf_graph(client.get(url, HTTP_ACCEPT=accept))
        pages.append(graph)
        identifiers |= {str(graph.value(d, DCT.identifier)) for d in graph.subjects(rdflib.RDF.type, DCAT.Dataset)}
        url = next((str(o) for design in (HYDRA.PartialCollectionView, HYDRA.PagedCollection)
                    for view in graph.subjects(rdflib.RDF.type, design) for o in graph.objects(view, HYDRA.next)), None)
        assert len(pages) <= 10, "the pages never end"
    return pages, identifiers


def test_a_harvester_reads_the_open_catalog_anonymously_page_by_page_with_etags(dcat_world):
    """Anonymous readers (a CKAN harvester) get the open datasets; logged-in readers all of
    them, a capped page at a time, in JSON-LD or Turtle; pages are cacheable (ETag, 304)."""
    anonymous = api_client()
    pages, identifiers = harvest(anonymous, "http://testserver/api/datasets/dcat/", "application/ld+json")
    assert identifiers == {"huangpu-roads"} and len(pages) == 1
    assert anonymous.get("/api/datasets/pudong-pipes/dcat/").status_code == 404  # restricted: not listed
    assert anonymous.get("/api/datasets/dcat/?data_class=conditional").json()["dcat:dataset"] == []
    assert "dcat:Dataset" in anonymous.get("/api/datasets/huangpu-roads/dcat/").json()["@type"]

    reader = api_client(dcat_world.applicant)
    for accept in RDF_FORMATS:
        pages, identifiers = harvest(reader, "http://testserver/api/datasets/dcat/?page_size=3", accept)
        assert identifiers == {"district-rooms", "huangpu-roads", "pudong-pipes", "sz-parcels"} and len(pages) == 2
    view = reader.get("/api/datasets/dcat/?page_size=3&page=2&theme=").json()["hydra:view"]
    assert view["hydra:totalItems"]["@value"] == "4" and view["hydra:itemsPerPage"]["@value"] == "3"
    first, previous = (parse_qs(urlsplit(view[k]["@id"]).query, keep_blank_values=True)
                       for k in ("hydra:first", "hydra:previous"))
    assert first == previous == {"page": ["1"], "page_size": ["3"], "theme": [""]}  # the filters kept
    assert "hydra:next" not in view and view["hydra:last"]["@id"] == view["@id"]
    assert "page_size" in reader.get("/api/datasets/dcat/?page_size=101").json()
    assert "page" in reader.get("/api/datasets/dcat/?page=x").json()
    assert reader.get("/api/datasets/dcat/?page=3&page_size=3").status_code == 404

    # Each page carries an ETag and answers 304 to If-None-Match until the catalogue changes.
    answer = reader.get("/api/datasets/dcat/")
    etag = answer["ETag"]
    assert answer.status_code == 200 and etag and "Accept" in answer["Vary"] and "private" in answer["Cache-Control"]
    again = reader.get("/api/datasets/dcat/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert reader.get("/api/datasets/dcat/", HTTP_IF_NONE_MATCH=etag, HTTP_ACCEPT="text/turtle").status_code == 200
    assert "public" in anonymous.get("/api/datasets/dcat/")["Cache-Control"]
    api_client(dcat_world.steward).patch("/api/datasets/huangpu-roads/", {"title_en": "Roads"}, format="json")
    changed = reader.get("/api/datasets/dcat/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_sql_queries_per_page_do_not_grow_with_the_catalog(published_world):
    from catalog import actions as catalog_actions

    w = published_world
    client = api_client(w.applicant)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/datasets/dcat/?page_size=100").status_code == 200
        return len(captured)

    before = queries()
    for i in range(3):
        dataset = catalog_actions.register_dataset(
            actor=w.steward, slug=f"more-{i}", title=f"更多 {i}", data_class="open", description="说明")
        add_corpus(w, dataset, seed=10 + i, rooms=40)
    after = queries()
    assert after == before, f"{before} queries for 4 datasets, {after} for 7"


def test_choice_labels_are_the_translated_labels():
    from discovery.metadata import choice_labels, labels
    from catalog.models import DataClass, Theme

    for choices in (DataClass, Theme):
        assert choice_labels(choices) == {value: labels(label) for value, label in choices.choices}
