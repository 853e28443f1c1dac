"""The catalogue as DCAT JSON-LD: well-formed JSON-LD (every term a keyword or a prefix the
context defines, literals shaped as value objects), every dataset present with its
bilingual titles, publisher, theme, spatial extent, dates, keywords and class, and published
releases as distributions."""
from __future__ import annotations

import json

import pytest
import shapely

from catalog.metadata import public_extent

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
            assert value.split(":")[0] in prefixes, f"{path}: type {value!r}"
        if key == "@id":
            assert value.startswith(("http://", "https://", "urn:")), f"{path}: id {value!r}"
        check_jsonld(value, prefixes, f"{path}.{key}")


def get_document(client, path):
    response = client.get(path)
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
    assert publisher["@type"] == "foaf:Organization" and publisher["dct:identifier"] == "sh-planning"
    assert {"@value": "sh-planning 名称", "@language": "zh"} in publisher["foaf:name"]
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
    assert spatial["locn:geometry"]["@type"] == spatial["dcat:bbox"]["@type"] == "gsp:wktLiteral"
    bbox = shapely.from_wkt(spatial["dcat:bbox"]["@value"])
    # The extent is given to the cell (catalog.metadata.public_extent), never the corpus's own bounds.
    assert bbox.bounds == pytest.approx(tuple(public_extent(w.corpus.extent, 16)), abs=1e-7)
    footprint = shapely.from_wkt(spatial["locn:geometry"]["@value"])
    assert footprint.bounds == pytest.approx(bbox.bounds, abs=1e-7)  # the cells span the bbox
    assert footprint.covers(shapely.box(*w.corpus.extent))  # the cells hold the corpus
    assert footprint.area < 10 * bbox.area + 0.001  # and are a coarse outline, not the whole city
    # A dataset without versions has only its district as a place; one without either, no place.
    assert datasets["pudong-pipes"]["dct:spatial"] == {"@type": "dct:Location", "locn:geographicName": "浦东新区"}
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
    assert {d["dct:format"] for d in distributions} == {"GeoParquet"}  # the default policy's one output
    (dist,) = distributions
    page = f"/releases/{w.release.pk}/"
    assert dist["@type"] == "dcat:Distribution" and dist["dcat:accessURL"]["@id"].endswith(page)
    assert dist["dcat:downloadURL"]["@id"].endswith(page)  # open data: the release page, for now
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
def test_every_role_reads_dcat_and_anonymous_callers_are_refused(world, path):
    assert api_client().get(path).status_code == 401
    for user in world.by_role.values():
        assert api_client(user).get(path).status_code == 200


def test_distributions_follow_the_data_class():
    """Plain data in, DCAT out: open data has a download URL, conditional data only an
    access URL, compute-only data no distribution at all."""
    from datetime import UTC, datetime

    from catalog import dcat

    release = {"id": 7, "version": 2, "status": "published", "published_at": datetime(2026, 1, 2, tzinfo=UTC),
               "url": "https://portal.example/releases/7/", "formats": ["geojson", "geoparquet"],
               "outputs": {"geojson": {"bytes": 10}, "geoparquet": {"bytes": 5}}}
    built = {**release, "id": 8, "status": "built"}

    def record(data_class):
        return {"data_class": data_class, "releases": [release, built]}

    open_ = dcat.distributions(record("open"))
    assert [d["dct:format"] for d in open_] == ["GeoJSON", "GeoParquet"]
    assert all(d["dcat:downloadURL"]["@id"] == release["url"] for d in open_)
    conditional = dcat.distributions(record("conditional"))
    assert len(conditional) == 2
    assert all("dcat:downloadURL" not in d and d["dcat:accessURL"] for d in conditional)
    assert dcat.distributions(record("compute_only")) == []
