"""Federated jobs on Flower's deployment engine, driven through the API on the real worker:
a SuperLink and three SuperNodes (one per district of the corpus) as processes, FedAvg
under Flower's client-side DP wrapper and SecAgg+, Opacus DP-SGD at each holder. Then the
faults: a holder dying after the first round (the rest finish), one dying during the first
round with every holder required, and the SuperLink stopping during it."""
from __future__ import annotations


import psutil
import pytest

from conftest import api_client, wait_for, worker_log_tail
from sandbox_support import (add_rooms_corpus, approve_lab, downloaded_model_scores, follow_job, generate_rooms,
                             submit)

pytestmark = pytest.mark.sandbox

ROOMS = 72_000  # the generator's first three districts
PARAMS = {"rounds": 2, "epochs": 1, "batch_size": 256, "learning_rate": 0.3, "target_epsilon": 3.0, "delta": 1e-5,
          "min_nodes": 2, "secagg": True, "dp": "client", "local_dp": True}
WALL_S = 540


def _supernodes(job_id: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "flower-supernode" in cmd and f"jobs/{job_id}/data/" in cmd:
            found.append(proc)
    return found


def _kill(proc: psutil.Process) -> None:
    for p in [*proc.children(recursive=True), proc]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


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


@pytest.fixture(scope="module")
def rooms_file(tmp_path_factory):
    """The three districts' rooms, generated once for the module (each test records them)."""
    return generate_rooms(tmp_path_factory.mktemp("rooms") / "rooms.parquet", rooms=ROOMS, seed=7)


@pytest.fixture
def federated_world(live_world, celery_worker, rooms_file):
    add_rooms_corpus(live_world, rooms=ROOMS, seed=7, generated=rooms_file)
    approve_lab(live_world, epsilon="10")
    return live_world


def test_federated_job_with_secagg_and_dp_releases_a_model_that_beats_the_baseline(federated_world):
    import dp_accounting

    from provenance.models import LineageEvent

    w = federated_world
    job_id = _start(w)
    job = follow_job(w, job_id, timeout=600)
    assert job["status"] == "review", (job["status"], job["status_reason"])
    rounds = [row for row in job["history"] if "nodes" in row]
    # Every round aggregates at least min_nodes holders. (Usually all three; on a loaded 2-core
    # machine a holder is sometimes left out of a round: 1 run in 4 of the whole suite here saw
    # [2, 2]. The job finishes with the others, as a holder dying does below.)
    assert len(rounds) == 2 and all(row["nodes"] >= PARAMS["min_nodes"] for row in rounds)
    # The curve: the held-out metric of the initial model and after each round.
    assert [row["round"] for row in job["history"]] == [0, 1, 2]
    assert all("accuracy" in row for row in job["history"])
    privacy = job["privacy"]
    assert "SecAgg+" in privacy["mechanism"] and "DP-SGD" in privacy["mechanism"]
    holders = set(privacy["nodes"])
    assert holders <= {"holder-0", "holder-1", "holder-2"} and len(holders) >= PARAMS["min_nodes"]
    for node in privacy["nodes"].values():  # each holder's ε, against an independent accountant
        event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
            node["sample_rate"], dp_accounting.GaussianDpEvent(node["noise_multiplier"])), node["steps"])
        independent = dp_accounting.rdp.RdpAccountant()
        independent.compose(event)
        expected = independent.get_epsilon(1e-5)
        assert abs(node["epsilon"] - expected) / expected < 0.01 and node["epsilon"] <= 3.0 * 1.01
    assert job["outcome"]["nodes_started"] == 3
    if job["outcome"]["nodes_dropped"] == 0:
        assert float(job["epsilon_spent"]) == pytest.approx(privacy["epsilon"], abs=1e-5)
    else:  # a holder that dropped out may have run steps it never reported: the full target is charged
        assert float(job["epsilon_spent"]) == pytest.approx(PARAMS["target_epsilon"])

    released = api_client(w.steward).post(f"/api/jobs/{job_id}/release/", {"note": "ok"}, format="json")
    assert released.status_code == 200, released.content
    accuracy, majority = downloaded_model_scores(w, released.json()["model"])
    assert accuracy > majority + 0.03, (accuracy, majority)
    assert not _supernodes(job_id)  # the federation was taken down
    kinds = list(LineageEvent.objects.filter(subject=f"jobs.job:{job_id}").values_list("event_type", flat=True))
    assert kinds == ["jobs.submitted", "jobs.approved", "jobs.started", "jobs.finished", "jobs.released"]


def _first_round(w, job_id):
    def done():
        history = api_client(w.researcher).get(f"/api/jobs/{job_id}/").json()["history"]
        return any("nodes" in row for row in history)

    wait_for(done, timeout=300, what="the first round")


def _round_underway(job_id: int) -> None:
    """Wait until a holder is working on the first round: a SuperNode runs a ClientApp for a
    message of it (Flower starts one process per message)."""

    def working():
        for node in _supernodes(job_id):
            try:
                if any("flwr-clientapp" in " ".join(c.cmdline()) for c in node.children(recursive=True)):
                    return True
            except psutil.NoSuchProcess:
                pass
        return False

    try:
        wait_for(working, timeout=300, interval=0.2, what="a holder to start on the first round")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the jobs worker's log ends:\n{worker_log_tail()}") from None


def _run_log(job_id: int) -> str:
    """The end of the run's log as the job keeps it (the ServerApp's, from the SuperLink)."""
    from jobs.models import Job

    return Job.objects.get(pk=job_id).log[-3000:]


def _three_supernodes(job_id: int) -> None:
    try:
        wait_for(lambda: len(_supernodes(job_id)) == 3, timeout=120, what="three SuperNodes")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the jobs worker's log ends:\n{worker_log_tail()}") from None


def _superlink(job_id: int) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "flower-superlink" in cmd and f"jobs/{job_id}/flower/" in cmd:
            return proc
    raise AssertionError(f"no SuperLink for job {job_id}")


def test_a_holder_dying_mid_run_leaves_the_others_to_finish_and_the_full_target_charged(federated_world):
    from budgets.models import PrivacyBudget

    w = federated_world
    job_id = _start(w)
    _three_supernodes(job_id)
    _first_round(w, job_id)
    _kill(next(p for p in _supernodes(job_id) if "data/2" in " ".join(p.cmdline())))
    job = follow_job(w, job_id, timeout=600)
    assert job["status"] == "review", (job["status"], job["status_reason"], _run_log(job_id))
    assert job["history"][-1]["nodes"] == 2  # the last round went on without the dead holder
    assert job["outcome"]["nodes_dropped"] == 1
    assert job["privacy"]["epsilon"] == 3.0 and "dropped out" in job["privacy"]["note"]
    assert PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms).epsilon_spent == 3


def test_too_few_holders_left_fails_the_job_cleanly_and_keeps_the_charge(federated_world):
    from budgets.models import PrivacyBudget

    w = federated_world
    job_id = _start(w, min_nodes=3)
    _three_supernodes(job_id)
    _round_underway(job_id)
    _kill(_supernodes(job_id)[0])
    job = follow_job(w, job_id, until=("failed", "review"), timeout=300)
    assert job["status"] == "failed"
    assert "only 2 of 3 holders are still online, fewer than the minimum of 3" in job["status_reason"]
    # It ran on the data, so its charge stays: never less than what it may have spent.
    assert PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms).epsilon_spent == 3
    wait_for(lambda: not _supernodes(job_id), timeout=60, what="the federation to be taken down")


def test_the_superlink_stopping_mid_run_fails_the_job_with_its_reason_and_keeps_the_charge(federated_world):
    from budgets.models import PrivacyBudget

    w = federated_world
    job_id = _start(w)
    _round_underway(job_id)
    _kill(_superlink(job_id))
    job = follow_job(w, job_id, until=("failed", "review"), timeout=300)
    assert job["status"] == "failed"
    assert "the SuperLink stopped during the run" in job["status_reason"]
    assert job["outcome"]["superlink"] == "stopped"
    assert PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms).epsilon_spent == 3
    wait_for(lambda: not _supernodes(job_id), timeout=60, what="the federation to be taken down")
