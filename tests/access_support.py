"""Helpers for the access tests (tests/access/): published releases of the world's
conditional and compute-only datasets, built by the real pipeline, and licences granted
through the real actions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import shapely

from conftest import api_client


def pipe_network(seed: int, count: int):
    from corpora.generator import generate_pipe_network

    return generate_pipe_network(seed=seed, count=count)


def PIPE_POLICY() -> dict:
    from portal.seed import pipe_policy

    return pipe_policy()


def version_and_policy(w, dataset, *, rooms: int = 240, seed: int = 11, pipes: int = 0, **spec):
    """A corpus version of ``dataset`` (a generated district of ``rooms`` rooms, or a network
    of ``pipes`` pipe segments) and its default policy for the dataset's class (``spec``
    overrides fields of it), made through the actions."""
    from django.conf import settings

    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district
    from releases import actions as release_actions
    from releases.pipeline import ReleaseSpec

    scratch = Path(settings.STATE_DIR) / "scratch" / f"{dataset.slug}-{seed}-{rooms}-{pipes}.parquet"
    source = [pipe_network(seed, pipes)] if pipes else generate_district(seed=seed, rooms=rooms)
    summary = store.write_corpus(source, scratch)
    corpus = record_corpus_version(
        actor=w.steward,
        dataset=dataset,
        file=scratch,
        source="generator",
        source_crs="EPSG:4490",
        summary=summary,
    )
    policy = release_actions.save_policy(
        actor=w.steward,
        dataset=dataset,
        spec={**ReleaseSpec(data_class=dataset.data_class).to_dict(), **spec},
    )
    return corpus, policy


def publish_release(w, dataset, **made):
    """version_and_policy, then a release built from them and published."""
    from releases import actions as release_actions
    from releases.tasks import build_release_task

    corpus, policy = version_and_policy(w, dataset, **made)
    release = release_actions.start_release(actor=w.steward, corpus=corpus, policy=policy)
    build_release_task(str(release.task_id), release.pk)
    release.refresh_from_db()
    assert release.status == "built", release.status
    return release_actions.publish_release(actor=w.steward, release=release)


def licensed_world(w, **approval):
    """A release of the conditional pipes dataset published (300 pipe segments) and the
    startup's application approved: w.pipes_release, w.licence (named user: w.applicant)."""
    from access import actions

    w.pipes_release = publish_release(w, w.pipes, pipes=300, desensitize=PIPE_POLICY())
    actions.approve_application(
        actor=w.steward, application=w.app_startup, reason="purpose is clear", **approval
    )
    w.app_startup.refresh_from_db()
    w.licence = w.app_startup.licence
    return w


def link(user, licence, fmt: str = "geojson", **body):
    response = api_client(user).post(
        f"/api/licences/{licence.pk}/links/", {"format": fmt, **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def release_base(release):
    """The release's own geometries and unit ids, as the pipeline wrote them."""
    import pyarrow.parquet as pq

    from access.licensing import release_source

    table = pq.read_table(release_source(release), columns=["unit_id", "geometry"])
    return (
        shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)),
        table.column("unit_id").to_numpy(zero_copy_only=False).astype(str),
    )


def features(geojson: bytes) -> tuple[np.ndarray, list[dict]]:
    data = json.loads(geojson)
    geoms = np.array(
        [shapely.from_geojson(json.dumps(f["geometry"])) for f in data["features"]], dtype=object
    )
    return geoms, [f["properties"] for f in data["features"]]


def leak_file(geoms, name: str = "leak.geojson", properties=None) -> io.BytesIO:
    """A GeoJSON file of the geometries (and optional properties), as a leaker would post it."""
    feats = [
        {
            "type": "Feature",
            "properties": (properties[i] if properties else {}),
            "geometry": json.loads(shapely.to_geojson(g)),
        }
        for i, g in enumerate(geoms)
    ]
    upload = io.BytesIO(json.dumps({"type": "FeatureCollection", "features": feats}).encode())
    upload.name = name
    return upload


def counts():
    """Rows of every access table and the event log: a refused request changes none of them.
    (Active defense may still raise an alert about the attempt: that is its own record.)"""
    from access.models import Application, Download, LeakFinding, Licence
    from provenance.models import LineageEvent

    rows = {m.__name__: m.objects.count() for m in (Application, Licence, Download, LeakFinding)}
    rows["events"] = LineageEvent.objects.exclude(event_type__startswith="defense.").count()
    return rows
