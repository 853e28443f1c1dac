"""Leak tracing: an auditor uploads a leaked file and the platform names the licence and
recipient it came from by the release fingerprint, records the finding and tells active
defense; a file that came from nobody's package names nobody."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import shapely

from access_support import content, counts, features, leak_file, link, licensed_world, release_base
from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


@pytest.fixture
def w(world):
    """Two recipients of the same conditional release: the startup and the lab."""
    from access import actions

    w = licensed_world(world)
    actions.submit_application(actor=w.researcher, dataset=w.pipes, purpose="pipe ageing study for a paper")
    lab_app = w.researcher.applications.get(dataset=w.pipes)
    actions.approve_application(actor=w.steward, application=lab_app, reason="ok")
    w.lab_licence = lab_app.licence
    return w


def trace(w, upload):
    return api_client(w.auditor).post("/api/leaks/", {"file": upload}, format="multipart")


def test_a_subset_of_a_real_download_names_its_licence_and_recipient(w):
    from access.hooks import leak_traced
    from provenance.models import LineageEvent

    package = content(api_client(w.applicant).get(link(w.applicant, w.licence)["url"]))
    geoms, _ = features(package)
    rng = np.random.default_rng(7)
    subset = geoms[rng.choice(len(geoms), size=len(geoms) // 5, replace=False)]  # 20%, shuffled
    heard = []
    leak_traced.connect(
        lambda sender, finding, **kw: heard.append(finding), weak=False, dispatch_uid="test-leak"
    )
    try:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = trace(w, leak_file(subset))  # geometry only: the attributes are dropped
    finally:
        leak_traced.disconnect(dispatch_uid="test-leak")
    assert response.status_code == 201, response.content
    finding = response.json()
    assert finding["licence"] == w.licence.pk and finding["recipient"] == "mili-tech"
    assert finding["recipient_users"] == ["applicant"]
    assert finding["release"] == w.pipes_release.pk and finding["leaked_units"] == len(subset)
    assert finding["matched_units"] >= len(subset) - 2 and finding["p_value"] < 1e-20
    scores = finding["detail"]["releases"][str(w.pipes_release.pk)]["scores"]
    assert scores[str(w.licence.pk)] > scores[str(w.lab_licence.pk)]

    event = LineageEvent.objects.get(
        event_type="access.leak_traced", subject=f"access.leakfinding:{finding['id']}"
    )
    payload = json.loads(event.payload)
    assert payload["inputs"] == [f"access.licence:{w.licence.pk}"] and payload["recipient"] == "mili-tech"
    assert [f.pk for f in heard] == [finding["id"]], "active defense is told, once, after the commit"

    # The lab's own package names the lab, not the startup.
    lab = features(content(api_client(w.researcher).get(link(w.researcher, w.lab_licence)["url"])))[0]
    other = trace(w, leak_file(lab[rng.permutation(len(lab))[:40]], name="lab.geojson")).json()
    assert other["licence"] == w.lab_licence.pk and other["recipient"] == "tongji-lab"


def test_the_unfingerprinted_release_names_nobody(w):
    base, _ = release_base(w.pipes_release)
    response = trace(w, leak_file(base))
    assert response.status_code == 201
    finding = response.json()
    assert finding["licence"] is None and finding["recipient"] is None
    assert finding["release"] == w.pipes_release.pk and finding["matched_units"] > 0


def test_a_leak_in_geoparquet_with_its_attributes_is_traced_too(w, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from releases.writers import write_geoparquet

    package = pq.read_table(
        io.BytesIO(
            content(api_client(w.applicant).get(link(w.applicant, w.licence, fmt="geoparquet")["url"]))
        )
    )
    subset = package.take(pa.array(np.random.default_rng(3).permutation(package.num_rows)[:60]))
    write_geoparquet(subset, tmp_path / "leak.parquet")
    finding = trace(w, _named((tmp_path / "leak.parquet").read_bytes(), "leak.parquet")).json()
    assert finding["licence"] == w.licence.pk and finding["recipient"] == "mili-tech"


BAD_UPLOADS = [
    (lambda: _named(b"{not json", "leak.geojson"), "not a readable GeoJSON"),
    (lambda: _named(b"hello", "leak.txt"), "unsupported file 'leak.txt'"),
    (
        lambda: _named(json.dumps({"type": "FeatureCollection", "features": []}).encode(), "leak.geojson"),
        "no features",
    ),
    # Gauss-Krüger metres in a file that states no CRS, so it is read as lon/lat: refused.
    (lambda: leak_file([shapely.box(500000, 3450000, 500010, 3450010)]), "cannot be in"),
]


def _named(data: bytes, name: str) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


@pytest.mark.parametrize("make,words", BAD_UPLOADS, ids=["malformed", "unsupported", "empty", "wrong-crs"])
def test_a_bad_upload_gets_a_clear_error_and_changes_nothing(w, make, words):
    before = counts()
    response = trace(w, make())
    assert response.status_code == 400, response.content
    assert words in response.json()["file"][0]
    assert counts() == before


def test_an_oversized_upload_is_refused(w, settings):
    settings.MILIAO_LEAK_UPLOAD_MAX_BYTES = 1000
    base, _ = release_base(w.pipes_release)
    before = counts()
    response = trace(w, leak_file(base))
    assert response.status_code == 400 and "over the 1000-byte limit" in response.json()["file"][0]
    assert counts() == before


def test_only_auditors_trace_leaks(w):
    base, _ = release_base(w.pipes_release)
    for user in (w.applicant, w.steward, w.admin, w.data_holder):
        response = api_client(user).post("/api/leaks/", {"file": leak_file(base[:20])}, format="multipart")
        assert response.status_code == 403 and "needs the role" in response.json()["detail"], user
