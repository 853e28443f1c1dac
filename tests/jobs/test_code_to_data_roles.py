"""Every code-to-data endpoint and page against every role: publishing a compute-only
dataset for PySyft, its mock download, the sandbox policy, and a released code job's
outputs. The rooms belong to the steward's bureau; the lab (researcher) ran the job. A
refused request writes nothing."""
from __future__ import annotations

import textwrap

import pytest

from conftest import build_world, per_test, rolled_back_at_the_end
from role_support import assert_answers
from sandbox_support import add_rooms_corpus, approve_lab, approved_for_a_run_here

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

ROLES = ["anonymous", "researcher", "applicant", "steward", "other_steward", "data_holder", "auditor", "admin"]
EVERYONE = dict.fromkeys(ROLES, 200) | {"anonymous": 401}
PAGES = dict.fromkeys(ROLES, 200) | {"anonymous": 302}
OWNING_STEWARD = dict.fromkeys(ROLES, 403) | {"anonymous": 401}
CODE = textwrap.dedent("""
    import os, pyarrow.compute as pc, pyarrow.csv as pacsv, pyarrow.parquet as pq, syft as sy
    units = pq.read_table(sy.resolve_dataset_file_path("district-rooms"))
    rooms = units.filter(pc.equal(units["kind"], "room"))
    os.makedirs("outputs", exist_ok=True)
    pacsv.write_csv(rooms.select(["unit_id", "district"]), "outputs/contributions.csv")
""")

# (name, method, path, body, expected status per role, status meaning "it was done")
TABLE = [
    ("syft-list", "get", lambda w: "/api/syft-datasets/", None, EVERYONE, None),
    ("syft-detail", "get", lambda w: f"/api/syft-datasets/{w.syft.pk}/", None, EVERYONE, None),
    ("policy-read", "get", lambda w: "/api/sandbox-policies/district-rooms/", None, EVERYONE, None),
    ("syft-mock", "get", lambda w: f"/api/syft-datasets/{w.syft.pk}/mock/", None, EVERYONE, None),
    ("syft-publish", "post", lambda w: "/api/syft-datasets/", lambda w: {"dataset": "district-rooms",
                                                                          "corpus": w.second_corpus.pk},
     OWNING_STEWARD | {"steward": 201}, 201),
    ("policy-set", "put", lambda w: "/api/sandbox-policies/district-rooms/",
     lambda w: {"min_cell_count": 20, "max_memory_mb": 2048, "max_disk_mb": 64},
     OWNING_STEWARD | {"steward": 200}, 200),
    ("job-outputs", "get", lambda w: f"/api/jobs/{w.code_job.pk}/outputs/", None,
     dict(anonymous=401, researcher=200, applicant=404, steward=403, other_steward=404, data_holder=404, auditor=403,
          admin=403), 200),
    ("page-code-to-data", "get", lambda w: "/jobs/code-to-data/", None, PAGES, None),
    ("page-publish", "post", lambda w: "/jobs/code-to-data/district-rooms/publish/", lambda w: {},
     dict.fromkeys(ROLES, 403) | {"anonymous": 302, "steward": 302}, 302),
    ("page-models", "get", lambda w: "/models/", None, PAGES, None),
]


def code_world(w, *, with_job: bool):
    from jobs import actions, runner

    add_rooms_corpus(w, rooms=1500)
    approve_lab(w)
    w.syft = actions.publish_syft_dataset(actor=w.steward, dataset=w.rooms)
    if with_job:
        job = actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="code", title="rooms per district",
                                 code=CODE, params={"target_epsilon": 0.5, "delta": 1e-6,
                                                    "aggregate": {"by": ["district"], "values": {}}})
        job = approved_for_a_run_here(w, job)
        runner.run_job(str(job.task_id), job.pk)  # the worker's run, done here
        job.refresh_from_db()
        assert job.status == "review", (job.status, job.status_reason)
        w.code_job = actions.release_job(actor=w.steward, job=job)
    w.second_corpus = add_rooms_corpus(w, rooms=1000, seed=12)
    return w


CASES = [(name, role) for name, *_ in TABLE for role in ROLES]


@pytest.fixture(scope="module")
def shared_code_world(request, django_db_setup, django_db_blocker):
    """`code_world` built once per module for each variant (with or without the released code
    job, given as the parameter): pytest tears one down before it builds the other, and each
    case asks on a copy of it inside a savepoint of its own."""
    with rolled_back_at_the_end(django_db_blocker):
        yield code_world(build_world(), with_job=request.param)


JOB_CASES = [(name, role) for name, role in CASES if name == "job-outputs"]
OTHER_CASES = [(name, role) for name, role in CASES if name != "job-outputs"]


@pytest.mark.parametrize("shared_code_world", [False], indirect=True, ids=["without-job"])
@pytest.mark.parametrize("name,role", OTHER_CASES, ids=[f"{n}-{r}" for n, r in OTHER_CASES])
def test_code_to_data_endpoint_answers_each_role(shared_code_world, name, role):
    _check(shared_code_world, name, role)


@pytest.mark.parametrize("shared_code_world", [True], indirect=True, ids=["with-job"])
@pytest.mark.parametrize("name,role", JOB_CASES, ids=[f"{n}-{r}" for n, r in JOB_CASES])
def test_code_job_outputs_answer_each_role(shared_code_world, name, role):
    _check(shared_code_world, name, role)


def _check(shared, name, role):
    _, method, path, body, expected, done = next(t for t in TABLE if t[0] == name)
    w = per_test(shared)
    assert_answers(w, role, method, path(w), body(w) if body else None, expected, done)
