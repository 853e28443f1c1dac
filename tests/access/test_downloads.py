"""Signed, expiring, single-use download links, and the package they stream: the
recipient's own fingerprint, at most one grid step from the release, memory bounded."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from access_support import content, counts, features, link, licensed_world, release_base
from conftest import api_client

pytestmark = [pytest.mark.access, pytest.mark.django_db]


@pytest.fixture
def w(world):
    return licensed_world(world)


def test_a_tampered_link_is_not_valid_and_changes_nothing(w):
    token = link(w.applicant, w.licence)["token"]
    body, stamp, signature = token.split(":")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    before = counts()
    for bad in (
        f"{forged_body}:{stamp}:{signature}",
        token[:-3],
        "not-a-token",
        f"{body}:{stamp}:{signature[::-1]}",
    ):
        response = api_client(w.applicant).get(f"/api/downloads/{bad}/")
        assert response.status_code == 400, bad
        assert response.json()["detail"] == (
            "this download link is not valid: it was altered or not issued by this platform"
        )
    assert counts() == before


def test_an_expired_link_is_gone_with_the_reason(w, monkeypatch):
    import time

    from django.core import signing

    url = link(w.applicant, w.licence)["url"]
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: time.time() + 11 * 60))
    before = counts()
    response = api_client(w.applicant).get(url)
    assert response.status_code == 410
    assert "this download link has expired (links last 10 minutes)" in response.json()["detail"]
    assert counts() == before and w.licence.downloads_used == 0


def test_a_link_serves_once(w):
    url = link(w.applicant, w.licence)["url"]
    client = api_client(w.applicant)
    assert client.get(url).status_code == 200
    before = counts()
    again = client.get(url)
    assert again.status_code == 410 and "already used" in again.json()["detail"]
    assert counts() == before


def test_another_users_link_is_refused(w):
    url = link(w.applicant, w.licence)["url"]
    before = counts()
    for user in (w.researcher, w.steward, w.auditor):
        response = api_client(user).get(url)
        assert response.status_code == 403
        assert response.json()["detail"] == "this download link was issued to another user; ask for your own"
    assert api_client().get(url).status_code == 401
    assert counts() == before


def test_a_link_for_a_foreign_licence_is_refused(w):
    # The lab's researcher cannot see the startup's licence; the steward sees it, but it was
    # not granted to the bureau.
    before = counts()
    hidden = api_client(w.researcher).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert hidden.status_code == 404
    foreign = api_client(w.steward).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert foreign.status_code == 403 and "needs the role" in foreign.json()["detail"]
    assert api_client(w.applicant).post("/api/licences/99999/links/", {}, format="json").status_code == 404
    bad_format = api_client(w.applicant).post(
        f"/api/licences/{w.licence.pk}/links/", {"format": "shp"}, format="json"
    )
    assert bad_format.status_code == 400 and "format" in bad_format.json()
    assert counts() == before


def test_a_colleague_not_named_on_the_licence_is_refused(w):
    from accounts import actions as account_actions

    colleague = account_actions.create_user(
        actor=None,
        username="colleague",
        password="Correct-horse-42",
        role="applicant",
        organisation=w.startup,
    )
    response = api_client(colleague).post(f"/api/licences/{w.licence.pk}/links/", {}, format="json")
    assert (
        response.status_code == 403 and "urn:miliao:user:colleague is not named" in response.json()["detail"]
    )


def test_the_package_is_streamed_and_differs_from_the_release_by_at_most_one_grid_step(w):
    from django.http import StreamingHttpResponse

    from releases.columns import grid_step_deg

    response = api_client(w.applicant).get(link(w.applicant, w.licence)["url"])
    assert isinstance(response, StreamingHttpResponse) and response.streaming
    assert response["Content-Type"] == "application/geo+json"
    assert 'attachment; filename="pudong-pipes-r' in response["Content-Disposition"]
    geoms, props = features(content(response))

    base, keys = release_base(w.pipes_release)
    by_id = dict(zip(keys, base))
    step = grid_step_deg(w.pipes_release.report["lightweight"]["precision_m"])
    moved = 0
    for geom, p in zip(geoms, props):
        a, b = shapely.get_coordinates(by_id[p["unit_id"]]), shapely.get_coordinates(geom)
        delta = (b - a) / step
        assert np.abs(delta).max() <= 1 + 1e-6, "at most one grid step per vertex and axis"
        assert np.allclose(delta, delta[0], atol=1e-6), "each unit moves rigidly"
        assert np.allclose(delta, np.rint(delta), atol=1e-6), "and stays on the release grid"
        moved += bool(np.abs(delta).max() > 0.5)
    assert moved == len(geoms), "every unit carries the mark"


def test_two_recipients_get_different_packages(world):
    from access import actions

    w = licensed_world(world)
    actions.submit_application(actor=w.researcher, dataset=w.pipes, purpose="pipe ageing study for a paper")
    lab_app = w.researcher.applications.get(dataset=w.pipes)
    actions.approve_application(actor=w.steward, application=lab_app, reason="ok")
    lab_licence = lab_app.licence
    ours = features(content(api_client(w.applicant).get(link(w.applicant, w.licence)["url"])))[0]
    theirs = features(content(api_client(w.researcher).get(link(w.researcher, lab_licence)["url"])))[0]
    assert len(ours) == len(theirs)
    assert not shapely.equals_exact(ours, theirs, tolerance=0).all()


def test_a_geoparquet_package_is_a_file_response_with_the_same_mark(w):
    from django.http import FileResponse

    response = api_client(w.applicant).get(link(w.applicant, w.licence, fmt="geoparquet")["url"])
    assert isinstance(response, FileResponse) and response.streaming
    table = pq.read_table(io.BytesIO(content(response)))
    assert b"geo" in table.schema.metadata
    package = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    base, keys = release_base(w.pipes_release)
    by_id = dict(zip(keys, base))
    ids = table.column("unit_id").to_pylist()
    assert len(package) == len(base)
    assert not shapely.equals_exact(package, np.array([by_id[i] for i in ids]), tolerance=0).any()


def test_the_package_is_built_batch_by_batch(w):
    """Memory follows the batch size: a small batch yields the collection in many chunks."""
    from access import licensing, packages

    spec = licensing.package_spec(w.pipes_release, w.licence)
    small = packages.PackageSpec(**{**spec.__dict__, "batch_rows": 50})
    chunks = list(packages.geojson_chunks(small, name="x"))
    rows = pq.ParquetFile(spec.source).metadata.num_rows
    assert len(chunks) == 2 + -(-rows // 50)
    whole = b"".join(chunks)
    assert whole == b"".join(packages.geojson_chunks(spec, name="x")), "the mark does not depend on the batch"


def test_active_defense_hears_of_downloads_and_of_refused_uses(w):
    """access.hooks: a download once committed; a refused use of the licence, with the reason."""
    from django.test import TestCase

    from access import hooks

    heard = []
    hooks.downloaded.connect(
        lambda sender, download, **kw: heard.append(("downloaded", download.pk)),
        weak=False,
        dispatch_uid="t-down",
    )
    hooks.licence_refused.connect(
        lambda sender, licence, user, reason, **kw: heard.append((user.username, reason)),
        weak=False,
        dispatch_uid="t-refused",
    )
    try:
        url = link(w.applicant, w.licence)["url"]
        assert api_client(w.researcher).get(url).status_code == 403  # the link was passed on
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = api_client(w.applicant).get(url)
        assert response.status_code == 200
    finally:
        hooks.downloaded.disconnect(dispatch_uid="t-down")
        hooks.licence_refused.disconnect(dispatch_uid="t-refused")
    download = w.licence.downloads.get()
    assert heard == [
        ("researcher", "this download link was issued to another user; ask for your own"),
        ("downloaded", download.pk),
    ]
