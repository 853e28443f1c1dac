"""Federated jobs on the standing federation, driven through the API on the real worker: the
platform's SuperLink and three district nodes (tests/federation_support.py), each holding
its own district's rows, FedAvg under Flower's client-side DP wrapper and SecAgg+, Opacus
DP-SGD at each holder. The runner submits to the SuperLink and starts nothing. Then what
the steward sees when things go wrong: a holder offline at submission, a holder killed
mid-round, the SuperLink restarted between jobs. And the platform never holds a row of a
district-held dataset."""
from __future__ import annotations

import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import api_client, wait_for
from federation_support import district_rooms
from sandbox import tasks
from sandbox_support import approve_lab, downloaded_model_scores, follow_job, submit

pytestmark = pytest.mark.sandbox

PARAMS = {"rounds": 2, "epochs": 1, "batch_size": 256, "learning_rate": 0.3, "target_epsilon": 3.0, "delta": 1e-5,
          "min_nodes": 2, "secagg": True, "dp": "client", "local_dp": True,
          "server_optimizer": "fedavg"}  # two rounds: averaging moves further than FedAdam's small steps
WALL_S = 540


def _start(w, **params):
    # A wall-clock limit below the tests' waits: a run that stalls fails with its reason and
    # frees the session's jobs worker for the next test (the default is an hour).
    created = submit(w, kind="federated", title="room use, three districts", task="room-use",
                     params={**PARAMS, **params}, limits={"wall_seconds": WALL_S})
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    approved = api_client(w.steward).post(f"/api/jobs/{job_id}/approve/", {"note": "ok"}, format="json")
    assert approved.status_code == 200, approved.content
    return job_id


@pytest.fixture
def federated_world(live_world, celery_worker, standing_federation):
    district_rooms(live_world, standing_federation)
    approve_lab(live_world, epsilon="10")
    live_world.federation = standing_federation
    return live_world


def _clientapps(federation) -> int:
    """How many ClientApp processes the nodes run now (one per message, each forked by the
    node's launcher: a launcher's child)."""
    import psutil

    count = 0
    for node in federation.nodes.values():
        try:
            launchers = [c for c in psutil.Process(node.proc.pid).children(recursive=True)
                         if "sandbox.federated.launcher" in c.cmdline()]
            count += sum(len(launcher.children()) for launcher in launchers)
        except psutil.NoSuchProcess:
            pass
    return count


def test_a_holder_offline_at_submission_or_killed_mid_round_is_what_the_steward_sees(federated_world):
    from budgets.models import PrivacyBudget

    w, federation = federated_world, federated_world.federation
    job_id = _start(w, min_nodes=3)
    wait_for(lambda: _clientapps(federation) > 0, timeout=300, interval=0.2, what="a holder working on round 1")
    federation.kill_node("jingan-node")
    try:
        job = follow_job(w, job_id, until=("failed", "review"), timeout=300, user=w.steward)
        assert job["status"] == "failed"
        # Whichever notices first: the platform (the SuperLink reports the node offline) or the
        # ServerApp (the node never answered the stage).
        assert re.search(r"only 2 of 3 holders (are still online|answered within \d+ s, and 2 are left), fewer "
                         r"than the minimum of 3", job["status_reason"]), job["status_reason"]
        # It ran on the data, so its charge stays: never less than what it may have spent.
        assert PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms).epsilon_spent == 3

        # Once the SuperLink has the node offline, a job that needs all three is refused at
        # submission, naming it.
        def states():
            return {n["name"]: n["state"] for n in api_client(w.steward).get("/api/federation/nodes/").json()}

        wait_for(lambda: states()["jingan-node"] == "offline", timeout=180, interval=1, what="jingan-node offline")
        assert states() == {"pudong-node": "online", "huangpu-node": "online", "jingan-node": "offline"}
        refused = submit(w, kind="federated", title="again", task="room-use", params={**PARAMS, "min_nodes": 3})
        assert refused.status_code == 409, refused.content
        assert "only 2 of the 3 holders are online (jingan-node offline)" in refused.json()["detail"]
    finally:
        federation.start_node("jingan-node")


def test_after_the_superlink_restarts_a_job_runs_at_the_nodes_and_no_row_reaches_the_platform(federated_world):
    import dp_accounting
    from django.conf import settings
    from django.db import connection

    from jobs.models import Job
    from provenance.models import LineageEvent

    w, federation = federated_world, federated_world.federation
    began = time.time()
    federation.restart_superlink()  # between jobs: its database keeps the nodes' registrations
    federation.wait_online(3)
    nodes = {n["name"]: n for n in api_client(w.steward).get("/api/federation/nodes/").json()}
    assert {n["state"] for n in nodes.values()} == {"online"} and all(n["last_contact"] for n in nodes.values())

    job_id = _start(w)
    job = follow_job(w, job_id, timeout=600)
    assert job["status"] == "review", (job["status"], job["status_reason"])
    rounds = [row for row in job["history"] if "nodes" in row]
    assert len(rounds) == 2 and all(row["nodes"] >= PARAMS["min_nodes"] for row in rounds)
    assert [row["round"] for row in job["history"]] == [0, 1, 2]
    privacy = job["privacy"]
    assert "SecAgg+" in privacy["mechanism"] and "DP-SGD" in privacy["mechanism"]
    assert set(privacy["nodes"]) <= set(federation.nodes) and len(privacy["nodes"]) >= PARAMS["min_nodes"]
    for node in privacy["nodes"].values():  # each holder's ε, against an independent accountant
        event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
            node["sample_rate"], dp_accounting.GaussianDpEvent(node["noise_multiplier"])), node["steps"])
        independent = dp_accounting.rdp.RdpAccountant()
        independent.compose(event)
        expected = independent.get_epsilon(1e-5)
        assert abs(node["epsilon"] - expected) / expected < 0.01 and node["epsilon"] <= 3.0 * 1.01
    # Each holder's figures: the device it trained on and its throughput.
    holders = job["outcome"]["holders"]
    assert set(holders) <= set(federation.nodes) and len(holders) >= PARAMS["min_nodes"]
    assert all(h["device"] == "cpu" and h["rows_per_s"] > 0 for h in holders.values())
    # ... and on the job's page, as the applicant reads them.
    from django.test import Client

    page = Client()
    page.force_login(w.researcher)
    html = page.get(f"/jobs/{job_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    table = html[html.index('data-testid="job-holders"'):]
    table = table[:table.index("</table>")]
    for name, figures in holders.items():
        assert f"<td>{name}</td><td>CPU</td><td>{round(figures['rows_per_s']):,}</td>" in table, table
    assert job["outcome"]["nodes_started"] == 3
    for name in holders:  # every message ran in a ClientApp forked by the node's warm launcher
        log = (federation.nodes[name].home / "node.log").read_text(errors="replace")
        assert "forked from the warm launcher" in log and "Start `flwr-clientapp` process" not in log
        assert "exceeds the specified max_weight" not in log  # SecAgg+ took the holder's weights whole
    if job["outcome"]["nodes_dropped"] == 0:
        assert float(job["epsilon_spent"]) == pytest.approx(privacy["epsilon"], abs=1e-5)
    else:  # a holder that dropped out may have run steps it never reported: the full target is charged
        assert float(job["epsilon_spent"]) == pytest.approx(PARAMS["target_epsilon"])

    released = api_client(w.steward).post(f"/api/jobs/{job_id}/release/", {"note": "ok"}, format="json")
    assert released.status_code == 200, released.content
    at_the_nodes = pa.concat_tables(tasks.read_partition(node.home / "partitions" / "district-rooms")
                                    for node in federation.nodes.values())
    salt = Job.objects.get(pk=job_id).corpus.sha256
    accuracy, majority = downloaded_model_scores(w, released.json()["model"], at_the_nodes, salt)
    assert accuracy > majority + 0.03, (accuracy, majority)
    kinds = list(LineageEvent.objects.filter(subject=f"jobs.job:{job_id}").values_list("event_type", flat=True))
    assert kinds == ["jobs.submitted", "jobs.approved", "jobs.started", "jobs.finished", "jobs.released"]

    # No private row of the district-held dataset is anywhere in the platform's database or in
    # what its state folder gained during this job: search both for known values of the nodes'
    # rows. (The generator numbers ids alike in every city, so files other tests left there,
    # of bureau-held rooms, hold the same ids.)
    known = set()
    for node in federation.nodes.values():
        table = pq.read_table(node.home / "partitions" / "district-rooms" / "units.parquet",
                              columns=["unit_id", "building_id"])
        known |= {v for v in table["unit_id"].to_pylist()[::997] if v}
        known |= {v for v in table["building_id"].to_pylist()[::499] if v}
    assert len(known) > 60
    needles = [v.encode() for v in known]
    state = settings.STATE_DIR
    found = []
    for path in state.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= began:
            data = path.read_bytes()
            found += [(str(path), n) for n in needles if n in data]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            text = "\n".join(row[0] for row in cursor.fetchall())
            found += [(table, v) for v in known if v in text]
    assert not found, found[:5]
