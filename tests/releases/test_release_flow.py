"""A steward's release, end to end through the API on a real Celery worker: ingest a
generated district, save a policy, preview it, build the release, publish it. Then the
refusals, and the same flow in the browser."""
from __future__ import annotations

import io
import json
import re

import pyarrow.parquet as pq
import pytest

from conftest import api_client, follow_task

pytestmark = pytest.mark.release


@pytest.mark.django_db(transaction=True)
def test_steward_builds_and_publishes_a_release_through_the_api(celery_worker, live_world):
    from django.conf import settings

    from provenance.models import LineageEvent
    from releases.models import Release

    steward = api_client(live_world.steward)
    started = steward.post("/api/corpus-versions/ingest/", {"dataset": "huangpu-roads", "seed": 21, "rooms": 3000},
                           format="json")
    assert started.status_code == 202
    task = follow_task(steward, started.json()["id"])
    assert task["status"] == "succeeded", task
    corpus = steward.get(f"/api/corpus-versions/{task['result']['corpus_version']}/").json()
    assert corpus["version"] == 1 and corpus["kinds"]["room"] == 3000 and len(corpus["sha256"]) == 64

    policy = steward.post("/api/release-policies/", {"dataset": "huangpu-roads", "spec": {"data_class": "open"}},
                          format="json")
    assert policy.status_code == 201 and policy.json()["version"] == 1
    preview = steward.post("/api/release-policies/preview/",
                           {"corpus_version": corpus["id"], "spec": {"data_class": "open"}, "units": 3000}, format="json")
    assert preview.status_code == 200 and preview.json()["desensitized"]["k_anonymity"]["k_reached"] >= 5

    release = steward.post("/api/releases/", {"corpus_version": corpus["id"], "policy": policy.json()["id"]},
                           format="json")
    assert release.status_code == 202 and release.json()["status"] == "building"
    # An applicant cannot see a release that is not published yet.
    applicant = api_client(live_world.applicant)
    assert applicant.get(f"/api/releases/{release.json()['id']}/").status_code == 404
    assert follow_task(steward, release.json()["task"])["status"] == "succeeded"
    built = steward.get(f"/api/releases/{release.json()['id']}/").json()
    assert built["status"] == "built"
    report = built["report"]
    assert report["hashes"]["input"] == corpus["sha256"] and report["units_out"] > 0
    released = pq.read_table(
        settings.STATE_DIR / "releases" / f"r{built['id']}" / built["outputs"]["geoparquet"]["path"]
    )
    assert "owner_id_number" not in released.column_names and released.num_rows == report["units_out"]

    published = steward.post(f"/api/releases/{built['id']}/publish/")
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert applicant.get(f"/api/releases/{built['id']}/").json()["status"] == "published"
    again = steward.post(f"/api/releases/{built['id']}/publish/")
    assert again.status_code == 409

    subject = f"releases.release:{built['id']}"
    assert list(LineageEvent.objects.filter(subject=subject).values_list("event_type", flat=True)) == [
        "releases.release_started", "releases.release_built", "releases.release_published",
    ]
    built_event = LineageEvent.objects.get(subject=subject, event_type="releases.release_built")
    assert json.loads(built_event.payload)["hashes"]["outputs"] == report["hashes"]["outputs"]
    assert LineageEvent.objects.filter(event_type="corpora.version_ingested").count() == 1
    assert Release.objects.get(pk=built["id"]).key_encrypted  # the key is stored, encrypted


@pytest.mark.django_db(transaction=True)
def test_a_bad_upload_fails_its_task_with_the_row_named_and_imports_nothing(celery_worker, live_world):
    from corpora.models import CorpusVersion

    bowtie = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"unit_id": "R1", "kind": "room", "z_min": 0, "z_max": 3},
             "geometry": {"type": "Polygon", "coordinates": [[[121.47, 31.23], [121.4701, 31.2301], [121.4701, 31.23],
                                                              [121.47, 31.2301], [121.47, 31.23]]]}},
        ],
    }
    upload = io.BytesIO(json.dumps(bowtie).encode())
    upload.name = "rooms.geojson"
    steward = api_client(live_world.steward)
    started = steward.post("/api/corpus-versions/ingest/", {"dataset": "huangpu-roads", "file": upload},
                           format="multipart")
    assert started.status_code == 202
    task = follow_task(steward, started.json()["id"])
    assert task["status"] == "failed"
    assert re.search(r"row 1 \(unit_id 'R1'\), geometry: invalid geometry \(Self-intersection", task["error"])
    assert CorpusVersion.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "who,body,status,field",
    [
        ("steward", {"dataset": "huangpu-roads", "seed": 1, "rooms": 5}, 400, "rooms"),
        ("steward", {"dataset": "huangpu-roads"}, 400, "file"),
        ("steward", {"dataset": "sz-parcels", "seed": 1, "rooms": 500}, 403, "detail"),
        ("other_steward", {"dataset": "huangpu-roads", "seed": 1, "rooms": 500}, 403, "detail"),
    ],
)
def test_ingest_refusals(world, who, body, status, field):
    from progress.models import TaskProgress

    before = TaskProgress.objects.count()
    response = api_client(getattr(world, who)).post("/api/corpus-versions/ingest/", body, format="json")
    assert response.status_code == status and field in response.json(), response.json()
    assert TaskProgress.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "spec,message",
    [
        ({"data_class": "conditional"}, "data_class: huangpu-roads is Open"),
        ({"data_class": "open", "shift": {"mode": "teleport"}}, "shift.mode"),
        ({"data_class": "open", "desensitize": {"k": 1}}, "desensitize"),
    ],
)
def test_bad_policies_are_refused_and_nothing_is_saved(world, spec, message):
    from releases.models import ReleasePolicy

    response = api_client(world.steward).post("/api/release-policies/", {"dataset": "huangpu-roads", "spec": spec},
                                              format="json")
    assert response.status_code == 400 and message in response.json()["spec"][0]
    assert ReleasePolicy.objects.count() == 0


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_steward_release_flow_in_the_browser(live_server, live_world, celery_worker, page):
    from conftest import log_in

    log_in(page, live_server.url, "steward")
    page.click("text=道路段")
    page.wait_for_selector("[data-testid=dataset-title]")
    page.fill("[data-testid=generate-form] input[name=rooms]", "2000")
    page.click("[data-testid=generate-form] button")
    # The task page shows the ingest's bar, then goes on to the dataset by itself.
    page.wait_for_url(f"{live_server.url}/datasets/huangpu-roads/", timeout=90_000)
    assert "v1" in page.inner_text("[data-testid=versions]")

    page.fill("[data-testid=policy-form] input[name=k]", "4")
    page.click("[data-testid=preview]")
    summary = page.inner_text("[data-testid=preview-result]")
    assert "k=4" in summary or re.search(r"k=\d", summary)
    page.wait_for_selector("[data-testid=preview-map][data-map-state=ready]")  # the preview's Leaflet map
    assert page.locator("[data-testid=preview-map] path.leaflet-interactive").count() > 10
    page.click("[data-testid=save-policy]")
    assert "发布规则已保存" in page.inner_text("[role=alert]")

    page.click("[data-testid=start-release]")
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    page.wait_for_selector("[data-testid=publish]", timeout=90_000)  # the page reloads itself once it is built
    page.wait_for_selector("[data-testid=map][data-map-state=ready]")  # the shifted release, drawn by Leaflet
    assert page.locator("[data-testid=map] path.leaflet-interactive").count() > 10
    assert "至少与" in page.inner_text("[data-testid=k-reached]")
    page.click("[data-testid=publish]")
    page.click("[data-testid=confirm]")  # publishing cannot be undone: the confirmation step
    assert "已发布" in page.inner_text("[data-testid=release-status]")
