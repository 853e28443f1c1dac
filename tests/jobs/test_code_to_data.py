"""Code-to-data jobs on PySyft's dataset and job layers, driven through the API on the real
worker: the steward publishes the compute-only rooms as a PySyft dataset, the applicant
downloads the mock part and develops a script against it, submits it as a job, the steward
reads the code and approves it, it runs in the jail on the private rows, its output is
checked and held, and the steward releases it."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from conftest import api_client
from sandbox_support import add_rooms_corpus, approve_lab, follow_job, submit

pytestmark = pytest.mark.sandbox

CONTRIBUTE = textwrap.dedent("""
    import os
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import syft as sy

    units = pq.read_table(sy.resolve_dataset_file_path("district-rooms"))
    rooms = units.filter(pc.equal(units["kind"], "room"))
    os.makedirs("outputs", exist_ok=True)
    pacsv.write_csv(rooms.select(["unit_id", "neighbourhood", "monthly_rent"]), "outputs/contributions.csv")
    print("contributed", rooms.num_rows)
""")
AGGREGATE = {"by": ["neighbourhood"], "values": {"monthly_rent": [0, 60000]}}


@pytest.fixture
def code_world(live_world, celery_worker):
    add_rooms_corpus(live_world, rooms=6000)
    approve_lab(live_world, epsilon="10")
    published = api_client(live_world.steward).post("/api/syft-datasets/", {"dataset": "district-rooms"},
                                                    format="json")
    assert published.status_code == 201, published.content
    live_world.syft = published.json()
    return live_world


def _run_and_review(w, code, params, **extra):
    created = submit(w, kind="code", title="rent by neighbourhood", code=code, params=params, **extra)
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    approved = api_client(w.steward).post(f"/api/jobs/{job_id}/approve/", {"note": "reads rooms only"},
                                          format="json")
    assert approved.status_code == 200, approved.content
    return job_id, follow_job(w, job_id)


def test_dp_aggregates_from_mock_development_to_released_outputs(code_world, tmp_path):
    from budgets.models import PrivacyBudget
    from django.conf import settings

    from jobs.models import Job
    from provenance.models import LineageEvent

    w = code_world
    assert w.syft["mock_rows"] == 500 and "owner_name" not in w.syft["columns"] and "unit_id" in w.syft["columns"]
    # The applicant develops against the mock: the same script, outside a job, reads mock rows.
    mock = api_client(w.researcher).get(f"/api/syft-datasets/{w.syft['id']}/mock/")
    assert mock.status_code == 200 and mock["Content-Type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(mock.content)).extractall(tmp_path / "mock")
    assert "DP aggregates" in (tmp_path / "mock" / "MILIAO.md").read_text()
    assert not list((tmp_path / "mock").rglob("private"))  # the private part never leaves
    (tmp_path / "job.py").write_text(CONTRIBUTE)
    local = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "SYFTBOX_FOLDER": str(tmp_path / "mock"),
                                "SYFTBOX_EMAIL": w.syft["owner"]})
    assert local.returncode == 0, local.stderr[-2000:]
    mock_rows = pacsv.read_csv(tmp_path / "outputs" / "contributions.csv")
    assert all(u.startswith("SYN-") for u in mock_rows["unit_id"].to_pylist())

    # Submitted unchanged, it runs on the private rows after the steward read it.
    job_id, job = _run_and_review(w, CONTRIBUTE, {"target_epsilon": 1.0, "delta": 1e-6, "aggregate": AGGREGATE})
    assert job["status"] == "review", (job["status"], job["status_reason"])
    assert job["syft_dataset"] == w.syft["id"]
    checks = {c["name"]: c for c in job["checks"]}
    assert checks["row_local"]["passed"] and all(c["passed"] for c in job["checks"]), job["checks"]
    privacy = job["privacy"]
    assert "OpenDP" in privacy["mechanism"] and privacy["epsilon"] <= 1.0 + 1e-9 and privacy["delta"] <= 1e-6
    assert float(job["epsilon_spent"]) == pytest.approx(privacy["epsilon"], abs=1e-5)
    budget = PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms)
    assert budget.epsilon_spent == Job.objects.get(pk=job_id).epsilon_spent
    # Once the output is held, the run's data, work folders and half-rows copy are gone.
    assert sorted(p.name for p in (settings.STATE_DIR / "jobs" / str(job_id)).iterdir()) == ["output"]

    # Nothing leaves before the steward releases it.
    early = api_client(w.researcher).get(f"/api/jobs/{job_id}/outputs/")
    assert early.status_code == 403 and "no released outputs" in early.json()["detail"]
    released = api_client(w.steward).post(f"/api/jobs/{job_id}/release/", {"note": "aggregates only"},
                                          format="json")
    assert released.status_code == 200, released.content
    outputs = api_client(w.researcher).get(f"/api/jobs/{job_id}/outputs/")
    assert outputs.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(outputs.content))
    assert archive.namelist() == ["aggregates.csv"]
    table = pacsv.read_csv(io.BytesIO(archive.read("aggregates.csv")))
    assert table.column_names == ["neighbourhood", "count", "monthly_rent_sum", "monthly_rent_mean"]
    # Noisy, but close to the truth for groups of hundreds of rooms.
    truth = pa.parquet.read_table(settings.STATE_DIR / w.rooms_corpus.path, columns=["kind", "neighbourhood"])
    truth = truth.filter(pc.equal(truth["kind"], "room"))
    for hood, count in zip(table["neighbourhood"].to_pylist(), table["count"].to_pylist()):
        exact = pc.sum(pc.equal(truth["neighbourhood"], hood)).as_py()
        assert abs(count - exact) < 60, (hood, count, exact)
    kinds = list(LineageEvent.objects.filter(subject=f"jobs.job:{job_id}").values_list("event_type", flat=True))
    assert kinds == ["jobs.submitted", "jobs.approved", "jobs.started", "jobs.finished", "jobs.released",
                     "jobs.outputs_downloaded"]
    # PySyft's own job record followed the steward's decisions.
    from jobs import data
    from sandbox import code_to_data

    syft_job = code_to_data.job(data.jobs_box(), owner=w.syft["owner"], job_name=f"miliao-job-{job_id}")
    assert syft_job.status == "done" and syft_job.code.strip() == CONTRIBUTE.strip()


def test_a_contribution_that_depends_on_other_records_is_not_released(code_world):
    w = code_world
    centred = CONTRIBUTE.replace(
        'pacsv.write_csv(rooms.select(["unit_id", "neighbourhood", "monthly_rent"])',
        'mean = pc.mean(rooms["monthly_rent"])\n'
        'rooms = rooms.set_column(rooms.column_names.index("monthly_rent"), "monthly_rent", '
        'pc.subtract(rooms["monthly_rent"], mean))\n'
        'pacsv.write_csv(rooms.select(["unit_id", "neighbourhood", "monthly_rent"])')
    job_id, job = _run_and_review(w, centred, {"target_epsilon": 1.0, "delta": 1e-6,
                                               "aggregate": {"by": ["neighbourhood"],
                                                             "values": {"monthly_rent": [-60000, 60000]}}})
    assert job["status"] == "failed"
    assert "contributed differently when the code ran on half of the rows" in job["status_reason"]
    from django.conf import settings

    assert not (settings.STATE_DIR / "jobs" / str(job_id)).exists()  # a failed run leaves no folder behind


def test_reviewed_outputs_that_leak_private_rows_fail_their_checks_and_cannot_be_released(code_world):
    w = code_world
    policy = api_client(w.steward).put("/api/sandbox-policies/district-rooms/", {"code_outputs": "reviewed"},
                                       format="json")
    assert policy.status_code == 200 and policy.json()["code_outputs"] == "reviewed", policy.content
    leak = textwrap.dedent("""
        import os, pyarrow.compute as pc, pyarrow.csv as pacsv, pyarrow.parquet as pq, syft as sy
        units = pq.read_table(sy.resolve_dataset_file_path("district-rooms"))
        os.makedirs("outputs", exist_ok=True)
        rooms = units.filter(pc.equal(units["kind"], "room")).slice(0, 20)
        pacsv.write_csv(rooms.select(["unit_id", "area_m2", "monthly_rent"]), "outputs/sample.csv")
    """)
    job_id, job = _run_and_review(w, leak, {"target_epsilon": 0.5, "delta": 1e-6})
    assert job["status"] == "review", job["status_reason"]
    failed = {c["name"] for c in job["checks"] if not c["passed"]}
    assert failed == {"identifiers", "verbatim_rows"}, job["checks"]
    assert "none: files reviewed" in job["privacy"]["mechanism"] and float(job["epsilon_spent"]) == 0.5
    detail = json.dumps(job["checks"])
    import pyarrow.parquet as pq
    from django.conf import settings

    first = pq.read_table(settings.STATE_DIR / w.rooms_corpus.path, columns=["unit_id"])["unit_id"][0].as_py()
    assert first not in detail  # the checks name files and counts, never a private value
    refused = api_client(w.steward).post(f"/api/jobs/{job_id}/release/", {"note": "ok"}, format="json")
    assert refused.status_code == 409 and "identifiers" in refused.json()["detail"]
    rejected = api_client(w.steward).post(f"/api/jobs/{job_id}/reject/", {"reason": "rows in the output"},
                                          format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"


def test_a_code_job_that_opens_a_socket_is_stopped_and_reported(code_world):
    w = code_world
    job_id, job = _run_and_review(w, "import socket\nsocket.create_connection(('10.0.0.1', 5432))\n",
                                  {"target_epsilon": 0.5, "delta": 1e-6, "aggregate": AGGREGATE})
    assert job["status"] == "failed" and "network access refused" in job["status_reason"]
    assert job["outcome"]["reason"] == "network"


@pytest.mark.django_db
def test_code_submissions_are_refused_with_the_field_named(world):
    from jobs import actions

    w = world
    add_rooms_corpus(w, rooms=1500)
    approve_lab(w)
    client = api_client(w.researcher)
    unpublished = client.post("/api/jobs/", {"kind": "code", "title": "x", "dataset": "district-rooms",
                                             "code": "print(1)", "params": {"aggregate": AGGREGATE}}, format="json")
    assert unpublished.status_code == 409 and "not published for code-to-data" in unpublished.json()["detail"]
    actions.publish_syft_dataset(actor=w.steward, dataset=w.rooms)
    cases = [
        ({"code": "def broken(:\n", "params": {"aggregate": AGGREGATE}}, "code"),
        ({"code": "print(1)", "params": {}}, "params.aggregate"),
        ({"code": "print(1)", "params": {"aggregate": {"by": ["x"], "values": {"v": [5, 1]}}}},
         "params.aggregate.values.v"),
        ({"code": "print(1)", "params": {"aggregate": AGGREGATE, "epochs": 3}}, "params"),
        ({"code": "print(1)", "params": {"aggregate": AGGREGATE, "target_epsilon": 50}}, None),
    ]
    for body, field in cases:
        response = client.post("/api/jobs/", {"kind": "code", "title": "x", "dataset": "district-rooms", **body},
                               format="json")
        if field is None:  # more than the budget holds
            assert response.status_code == 409 and "privacy budget" in response.json()["detail"], response.content
        else:
            assert response.status_code == 400 and field in response.json(), (field, response.content)
    again = api_client(w.steward).post("/api/syft-datasets/", {"dataset": "district-rooms"}, format="json")
    assert again.status_code == 409 and "already published" in again.json()["detail"]
    policy = api_client(w.steward).put("/api/sandbox-policies/district-rooms/", {"min_cell_count": 0},
                                       format="json")
    assert policy.status_code == 400 and "min_cell_count" in policy.json()
