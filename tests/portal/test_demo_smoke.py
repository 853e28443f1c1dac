"""Smoke test of the development defaults: `manage.py demo` (what `make demo` runs) on SQLite,
the folder broker, its workers and beat as processes of their own, an anvil chain node it
starts with its chain kept under the state folder, serving the portal on 127.0.0.1, and
stopping them all when it stops."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import REPO, wait_for

pytestmark = pytest.mark.foundation

SERVICE_ENV = {"DATABASE_URL", "CELERY_BROKER_URL", "CHAIN_RPC_URL", "CHAIN_ID", "DJANGO_SETTINGS_MODULE", "MILIAO_ENV"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    env["MILIAO_STATE_DIR"] = str(tmp_path / "state")
    env["ANCHOR_INTERVAL_S"] = "1"  # so the beat thread's anchoring shows within the test
    # The demo starts its node on CHAIN_RPC_URL's port: a free one, not the default 8545, so
    # that a demo running on this machine is left alone.
    env["CHAIN_RPC_URL"] = f"http://127.0.0.1:{_free_port()}"
    env["FLOWER_SUPERLINK"] = f"127.0.0.1:{_free_port()}"  # its standing SuperLink, likewise
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def serving():
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early:\n{log_path.read_text()[-3000:]}")
        try:
            return requests.get(f"{base}/accounts/login/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        # Seeding builds two releases and runs a federated job on three SuperNodes first.
        wait_for(serving, timeout=420, interval=0.5, what="the demo portal to answer")
        output = log_path.read_text()
        logins = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(miliao-\S+)", output, re.M))
        yield base, logins, output, tmp_path, proc, env["CHAIN_RPC_URL"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_demo_serves_the_seeded_portal_on_development_defaults(demo):
    base, logins, output, tmp_path, _, rpc = demo
    assert set(logins) >= {"admin", "steward", "holder", "applicant", "auditor"}
    assert (tmp_path / "state" / "miliao.sqlite3").exists()

    # A page, with a session login.
    web = requests.Session()
    web.get(f"{base}/accounts/login/")
    page = web.post(
        f"{base}/accounts/login/",
        data={"username": "steward", "password": logins["steward"], "csrfmiddlewaretoken": web.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert page.status_code == 200 and "数据管理员工作台" in page.text
    assert "训练房间用途识别模型" in page.text  # the seeded application awaits review
    # Served as in production: gunicorn, DEBUG off (the site's 404, not Django's URL map),
    # static files and the favicon served, a Content-Security-Policy on every page.
    assert re.search(r"web server \(pid \d+\)", output)
    missing = web.get(f"{base}/no-such-page/")
    assert missing.status_code == 404 and 'data-testid="error-page"' in missing.text and "URLconf" not in missing.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in ("/static/miliao/site.css", "/static/miliao/progress.js", "/favicon.ico"):
        assert web.get(f"{base}{asset}").status_code == 200, asset

    # The API, with a token; a background task on the in-process worker.
    token = requests.post(
        f"{base}/api/auth/token/", data={"username": "auditor", "password": logins["auditor"]}
    ).json()["token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    datasets = api.get(f"{base}/api/datasets/").json()
    assert {d["data_class"] for d in datasets["results"]} == {"open", "conditional", "compute_only"}
    # Three bureau-held versions, and the district-held rooms' catalogue version after each of
    # its three nodes published (versions without a file: the rows are at the nodes).
    assert requests.get(f"{base}/api/corpus-versions/", headers=api.headers).json()["count"] == 3 + 3
    task_id = api.post(f"{base}/api/events/verify/").json()["id"]

    def finished():
        task = api.get(f"{base}/api/tasks/{task_id}/").json()
        return task if task["status"] in {"succeeded", "failed"} else None

    task = wait_for(finished, timeout=60, interval=0.3, what="the verification task")
    assert task["status"] == "succeeded" and task["result"]["ok"] is True
    assert task["result"]["checked"] >= int(re.search(r"Provenance: events 1–(\d+) anchored", output).group(1))

    # The seeded district was released and published; any logged-in user sees its report.
    applicant = requests.post(
        f"{base}/api/auth/token/", data={"username": "applicant", "password": logins["applicant"]}
    ).json()["token"]
    releases = requests.get(f"{base}/api/releases/", headers={"Authorization": f"Token {applicant}"}).json()
    by_dataset = {r["dataset"]: r for r in releases["results"]}
    assert set(by_dataset) == {"demo-district", "pudong-pipes"}
    release = by_dataset["demo-district"]
    assert release["status"] == "published" and release["report"]["units_out"] > 10_000
    assert set(release["outputs"]) == {"geoparquet", "geopackage", "geojson"}
    page = web.get(f"{base}/releases/{release['id']}/")
    assert page.status_code == 200 and "data-map" in page.text and "/map.geojson" in page.text  # a Leaflet map

    # Seeding anchored the event log on the demo's anvil node, and the release's lineage
    # verifies against it, from the command's output and again through the API.
    assert f"Chain: anvil at {rpc} (chain id 31337" in output
    assert f"anchored on the chain ({rpc})" in output
    assert re.search(rf"Lineage of releases.release:{release['id']}: \d+ events, \d+ proved on chain, verified", output)
    report = api.post(f"{base}/api/lineage/verify/", json={"subject": f"releases.release:{release['id']}"}).json()
    assert report["ok"] is True and report["anchored"] == report["events"] >= 5
    # The verification above recorded a checkpoint event; the beat thread anchors it.
    wait_for(lambda: api.get(f"{base}/api/anchors/status/").json()["unanchored"] == 0, timeout=60, interval=0.5,
             what="the demo's beat to anchor the new event")
    assert api.get(f"{base}/api/anchors/").json()["count"] >= 2
    # The node writes its chain to the state folder as it goes (and again when it stops).
    wait_for(lambda: (tmp_path / "state" / "chain" / "anvil-state.json").exists(), timeout=30, interval=0.3,
             what="the demo's anvil to write its state file")


def test_demo_ran_a_federated_job_into_the_model_registry(demo):
    base, logins, output, tmp_path, _, _ = demo
    assert re.search(r"Federated job #\d+ \(3 district nodes, SecAgg\+, DP-SGD\): released", output), output[-3000:]
    assert "Federation: SuperLink at 127.0.0.1:" in output
    assert "Code-to-data: district-rooms v1 published as a PySyft dataset" in output
    token = requests.post(
        f"{base}/api/auth/token/", data={"username": "researcher", "password": logins["researcher"]}
    ).json()["token"]
    headers = {"Authorization": f"Token {token}"}
    models = requests.get(f"{base}/api/models/", headers=headers).json()
    assert models["count"] == 1
    card = models["results"][0]["card"]
    assert card["privacy"]["epsilon"] <= 3.0 and "SecAgg+" in card["privacy"]["mechanism"]
    # The rows are at the districts' nodes: the platform has no trivial model's score to compare
    # with; a room-use classifier over six uses that learnt nothing scores about 1/6.
    assert card["metrics"]["accuracy"] > 0.3
    weights = requests.get(f"{base}/api/models/{models['results'][0]['id']}/weights/", headers=headers)
    assert weights.status_code == 200 and len(weights.content) == models["results"][0]["size"]
    # A scenario with an open challenge on the same rooms, hidden from every team.
    challenges = requests.get(f"{base}/api/challenges/", headers=headers).json()["results"]
    assert [(c["slug"], c["phase"], c["scenario"]) for c in challenges] == [("room-use-2026", "open", "building-use")]


def test_the_demo_datasets_metadata_names_the_districts_of_their_seeded_rows(demo):
    """A dataset's district is what its rows say, most units first (the catalogue filters and
    the DCAT record read it)."""
    import sqlite3
    from collections import Counter

    import pyarrow.parquet as pq

    state = demo[3] / "state"
    with sqlite3.connect(state / "miliao.sqlite3") as db:
        seeded = db.execute(
            "SELECT d.slug, d.district, v.path FROM catalog_dataset d JOIN corpora_corpusversion v ON v.dataset_id = d.id"
            " WHERE v.path != ''"  # a district-held dataset's versions have no file here: its rows are at the nodes
        ).fetchall()
    assert {slug for slug, _, _ in seeded} >= {"demo-district", "pudong-pipes", "district-rooms"}
    for slug, district, path in seeded:
        rows = Counter(pq.read_table(state / path, columns=["district"]).column("district").to_pylist())
        assert district.split("、") == [name for name, _ in rows.most_common()], (slug, district, rows)


def test_demo_seeding_twice_changes_nothing(demo):
    base, logins, output, tmp_path, _, rpc = demo
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    env["MILIAO_STATE_DIR"] = str(tmp_path / "state")
    env["CHAIN_RPC_URL"] = rpc

    def events() -> int:
        verify = subprocess.run([sys.executable, "manage.py", "verify_events"], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        return int(re.search(r"event log OK: (\d+) events", verify.stdout).group(1))

    time.sleep(0.5)
    before = events()
    again = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"Chain: the node at {rpc} (chain id 31337), already running." in again.stdout  # the demo's own
    assert dict(re.findall(r"^\s+\w+\s+(\w+)\s+(miliao-\S+)", again.stdout, re.M)) == logins
    # The second seeding recorded nothing: the log holds exactly the events it held before.
    assert events() == before


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_workers_and_beat_as_processes_and_stops_them_with_itself(demo):
    """Last in this module: it stops the demo, and its chain comes back from the state file."""
    base, logins, output, tmp_path, proc, rpc = demo
    token = requests.post(f"{base}/api/auth/token/", data={"username": "auditor", "password": logins["auditor"]})
    anchors = requests.get(f"{base}/api/anchors/", headers={"Authorization": f"Token {token.json()['token']}"})
    newest = next(a for a in anchors.json()["results"] if a["block_number"] is not None)  # mined
    children = {name: int(pid) for name, pid in re.findall(r"(jobs worker|platform worker|ledger worker|beat|web server) \(pid (\d+)\)",
                                                           output.split("Workers: ", 1)[1].splitlines()[0])}
    assert set(children) == {"jobs worker", "platform worker", "ledger worker", "beat", "web server"}
    assert proc.pid not in children.values() and all(_alive(pid) for pid in children.values())
    proc.send_signal(signal.SIGINT)
    # The demo bounds its own stop (its children together, STOP_TIMEOUT_S at most);
    # this only catches one that never ends, with room for a busy machine.
    assert proc.wait(timeout=120) == 0
    assert not [name for name, pid in children.items() if _alive(pid)]
    assert "Stopped: jobs worker" in (tmp_path / "demo.log").read_text()
    with pytest.raises(requests.ConnectionError):  # the demo's node stopped with it
        requests.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2)

    # A node started on the state file holds the demo's registry with every anchor, as the next
    # `make demo` finds it.
    from web3 import Web3

    from ledger.devnode import Anvil
    from ledger.registry import Registry

    with Anvil().start(state_path=tmp_path / "state" / "chain" / "anvil-state.json") as node:
        registry = Registry(Web3(Web3.HTTPProvider(node.url)), newest["registry"])
        assert registry.anchor_count() >= 2
        on_chain = registry.anchor_of_root(newest["root"])
        assert (on_chain.first_seq, on_chain.last_seq) == (newest["first_seq"], newest["last_seq"])
