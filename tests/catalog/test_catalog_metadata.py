"""Dataset metadata: registered and changed through catalog.actions, read through the API
with each version's extent, kinds, fields, covered grid cells and update date, and the
release history the reader may see."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from catalog_support import add_corpus
from conftest import add_release, api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


class _Event:
    def __init__(self, row):
        self.subject, self.payload = row.subject, json.loads(row.payload)


def _events(event_type):
    from provenance.models import LineageEvent

    return [_Event(e) for e in LineageEvent.objects.filter(event_type=event_type).order_by("seq")]


def test_registration_through_the_api_keeps_the_metadata_and_records_it(world):
    body = {
        "slug": "jingan-parcels", "title": "静安区地块", "title_en": "Jing'an parcels", "data_class": "open",
        "description": "地块边界", "description_en": "Parcel boundaries", "theme": "land_use",
        "district": "静安区", "keywords": ["地块", " parcels ", "地块", ""],
    }
    response = api_client(world.steward).post("/api/datasets/", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["theme"], data["district"], data["keywords"]) == ("land_use", "静安区", ["地块", "parcels"])
    assert data["description_en"] == "Parcel boundaries" and data["owner"] == "sh-planning"
    assert data["latest_version"] is None and data["versions"] == [] and data["releases"] == []
    event = _events("catalog.dataset_registered")[-1]
    assert event.payload["theme"] == "land_use" and event.payload["district"] == "静安区"


def test_existing_callers_get_sensible_defaults(world):
    assert (world.roads.theme, world.roads.district, world.roads.keywords, world.roads.description_en) == (
        "other", "", [], ""
    )


@pytest.mark.parametrize(
    "body,field",
    [
        ({"theme": "weather"}, "theme"),
        ({"keywords": "not a list"}, "keywords"),
        ({"keywords": [f"k{i}" for i in range(21)]}, "keywords"),
        ({"keywords": ["x" * 51]}, "keywords"),
        ({"title": "  "}, "title"),
        ({"district": "区" * 101}, "district"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(world, body, field):
    before = len(_events("catalog.metadata_updated"))
    response = api_client(world.steward).patch(f"/api/datasets/{world.roads.slug}/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert len(_events("catalog.metadata_updated")) == before


@pytest.mark.parametrize("field", ["data_class", "slug", "owner", "holders"])
def test_class_slug_owner_and_holders_cannot_be_patched(world, field):
    response = api_client(world.steward).patch(f"/api/datasets/{world.roads.slug}/", {field: "x"}, format="json")
    assert response.status_code == 400 and field in response.json()
    world.roads.refresh_from_db()
    assert world.roads.data_class == "open"


def test_a_steward_updates_metadata_and_the_event_holds_before_and_after(world):
    body = {"theme": "transport", "keywords": ["道路", "roads"], "description_en": "Road centre lines",
            "district": "黄浦区"}
    response = api_client(world.steward).patch(f"/api/datasets/{world.roads.slug}/", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["theme"] == "transport" and response.json()["keywords"] == ["道路", "roads"]
    event = _events("catalog.metadata_updated")[-1]
    assert event.subject == f"catalog.dataset:{world.roads.pk}"
    assert event.payload["before"] == {"theme": "other", "keywords": [], "description_en": "", "district": ""}
    assert event.payload["after"] == body
    # The same values again change nothing and record nothing.
    api_client(world.steward).patch(f"/api/datasets/{world.roads.slug}/", body, format="json")
    assert len(_events("catalog.metadata_updated")) == 1


@pytest.mark.parametrize(
    "who,status", [(None, 401), ("applicant", 403), ("data_holder", 403), ("auditor", 403), ("admin", 403),
                   ("other_steward", 403), ("steward", 200)],
)
def test_only_stewards_of_the_owning_bureau_change_metadata(world, who, status):
    user = getattr(world, who) if who else None
    response = api_client(user).patch(f"/api/datasets/{world.roads.slug}/", {"district": "黄浦区"}, format="json")
    assert response.status_code == status, response.json()
    world.roads.refresh_from_db()
    assert world.roads.district == ("黄浦区" if status == 200 else "")


def test_put_is_not_offered(world):
    response = api_client(world.steward).put(f"/api/datasets/{world.roads.slug}/", {"title": "x"}, format="json")
    assert response.status_code == 405


def test_the_dcat_slug_is_reserved(world):
    response = api_client(world.steward).post(
        "/api/datasets/", {"slug": "dcat", "title": "T", "data_class": "open"}, format="json"
    )
    assert response.status_code == 400 and "reserved" in response.json()["slug"][0]


def test_version_metadata_extent_kinds_fields_cells_and_update_date(release_world):
    from django.conf import settings

    from corpora import grid
    from corpora.schema import UNIT_SCHEMA

    w = release_world
    data = api_client(w.applicant).get(f"/api/datasets/{w.roads.slug}/").json()
    version = data["versions"][0]
    assert data["latest_version"] == version and version["version"] == w.corpus.version
    assert version["units"] == w.corpus.units and version["kinds"] == w.corpus.kinds
    assert set(version["kinds"]) >= {"room", "building", "road"}
    from discovery.metadata import public_extent

    # The extent out to the cells it touches: the corpus's own bounds are true positions.
    assert data["extent"] == version["extent"] == public_extent(w.corpus.extent, 16) != w.corpus.extent
    true = w.corpus.extent
    assert version["extent"][:2] <= true[:2] and version["extent"][2:] >= true[2:]
    assert {f["name"]: f["type"] for f in data["fields"]} == {f.name: str(f.type) for f in UNIT_SCHEMA}
    assert {"name": "monthly_rent", "type": "double"} in version["fields"]
    assert version["updated_at"].startswith(w.corpus.created_at.date().isoformat())
    assert data["updated_at"] == version["updated_at"]

    # Cells: level 16, sorted, tens of cells at most for a small district, and every unit
    # (every vertex of it) lies in a covered cell.
    cells = version["cells"]
    assert version["cell_level"] == 16 and version["cell_count"] == len(cells) > 0
    assert cells == sorted(set(cells)) and all(len(c) == 17 for c in cells)
    import pyarrow.parquet as pq

    units = pq.read_table(Path(settings.STATE_DIR) / w.corpus.path, columns=["geometry", "z_min", "z_max"])
    coords = shapely.get_coordinates(shapely.from_wkb(units.column("geometry").to_numpy(zero_copy_only=False)))
    assert set(grid.encode(coords[:, 0], coords[:, 1], 0.0, 16).tolist()) <= set(cells)
    lon0, lat0, _, lon1, lat1, _ = grid.decode(np.array(cells))
    extent = version["extent"]
    assert lon0.min() <= extent[0] and lat0.min() <= extent[1]
    assert lon1.max() >= extent[2] and lat1.max() >= extent[3]


def test_release_history_shows_what_the_reader_may_see(release_world):
    from releases import actions as release_actions

    w = release_world
    path = f"/api/datasets/{w.roads.slug}/"
    own = api_client(w.steward).get(path).json()["releases"]
    assert [(r["id"], r["status"], r["version"]) for r in own] == [(w.release.pk, "built", w.corpus.version)]
    assert own[0]["created_at"] and own[0]["published_at"] is None
    assert own[0]["url"].endswith(f"/releases/{w.release.pk}/") and "geoparquet" in own[0]["formats"]
    assert api_client(w.applicant).get(path).json()["releases"] == []  # unpublished: bureau and auditors only
    assert len(api_client(w.auditor).get(path).json()["releases"]) == 1

    release_actions.publish_release(actor=w.steward, release=w.release)
    seen = api_client(w.applicant).get(path).json()["releases"]
    assert [(r["id"], r["status"]) for r in seen] == [(w.release.pk, "published")] and seen[0]["published_at"]


def test_list_shows_the_newest_version_without_its_cells(release_world):
    w = release_world
    add_corpus(w, w.roads, seed=9)  # version 2, in the west
    items = {d["slug"]: d for d in api_client(w.applicant).get("/api/datasets/").json()["results"]}
    latest = items["huangpu-roads"]["latest_version"]
    assert latest["version"] == 2 and latest["cell_count"] > 0 and "cells" not in latest
    assert items["huangpu-roads"]["extent"][0] < 121.35  # the west corpus is the newest
    assert items["district-rooms"]["latest_version"] is None
    assert "versions" not in items["huangpu-roads"] and "releases" not in items["huangpu-roads"]
    detail = api_client(w.applicant).get("/api/datasets/huangpu-roads/").json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]


def test_a_generated_ingest_records_cells_through_the_task(world):
    """The Celery task path (inline here) carries the cells from the write to the version."""
    from corpora import actions as corpus_actions
    from corpora.models import CorpusVersion
    from corpora.tasks import ingest_task
    from progress.models import TaskProgress

    # Inside the test's transaction the queued dispatch never fires: run the task here.
    task = corpus_actions.start_generated_ingest(actor=world.steward, dataset=world.pipes, seed=4, rooms=300)
    ingest_task(str(task.pk), world.pipes.pk, {"generator": {"seed": 4, "rooms": 300}})
    version = CorpusVersion.objects.get(dataset=world.pipes)
    assert version.cell_level == 16 and version.cells and version.fields
    assert "cells" not in TaskProgress.objects.get(pk=task.pk).result
