"""Node onboarding against the session's standing SuperLink: a steward registers a district
node's key (`flwr supernode register`), sees it registered, online, revoked, with its last
contact and device; a revoked key is shut out and never registered again. The wrong role is
refused, and bad input (a key that is not one, a revoked key, a partition whose schema does
not match, a holder that holds no partition, a holder revoked) changes nothing."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from conftest import REPO, api_client, wait_for
from federation_support import ADDRESS, CA, district_rooms, node_tool
from sandbox.federated.deploy import kill_tree
from sandbox_support import approve_lab, submit

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


def _nodes(user) -> dict:
    answer = api_client(user).get("/api/federation/nodes/")
    assert answer.status_code == 200, answer.content
    return {n["name"]: n for n in answer.json()}


def test_a_steward_registers_a_node_sees_it_online_and_revokes_it(world, standing_federation, tmp_path):
    from federation.models import DistrictNode
    from provenance.models import LineageEvent

    w = district_rooms(world, standing_federation)
    approve_lab(w)
    home = tmp_path / "extra"
    public = node_tool("init", "--home", str(home), "--name", "extra-node").stdout.strip()
    body = {"organisation": w.district.code, "name": "extra-node", "public_key": public}
    events = LineageEvent.objects.count()

    # The wrong role, and a key that is not one: refused, nothing changed.
    assert api_client(w.data_holder).post("/api/federation/nodes/", body, format="json").status_code == 403
    assert api_client(w.researcher).get("/api/federation/nodes/").status_code == 403
    bad = api_client(w.steward).post("/api/federation/nodes/", {**body, "public_key": "ssh-rsa AAAA"}, format="json")
    assert bad.status_code == 400 and "public_key" in bad.json()
    assert not DistrictNode.objects.filter(name="extra-node").exists() and LineageEvent.objects.count() == events

    created = api_client(w.steward).post("/api/federation/nodes/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["state"] == "registered" and created.json()["last_contact"] is None
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.federated.node", "start", "--home", str(home),
                             "--superlink", ADDRESS, "--root-certificates", str(CA)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: _nodes(w.steward)["extra-node"]["state"] == "online", timeout=120, interval=0.5,
                 what="the new node online")
        assert _nodes(w.steward)["extra-node"]["last_contact"]
        # The district's data holder sees its own nodes and the partitions on them; another's, none.
        mine = _nodes(w.data_holder)
        assert set(mine) == {"pudong-node", "extra-node"}
        assert mine["pudong-node"]["partitions"][0]["dataset"] == "district-rooms"
        assert mine["pudong-node"]["device"] == "cpu"
        assert set(_nodes(w.holders["jingan"])) == {"jingan-node"}

        # A job asking for a holder that holds no partition of the dataset: refused, naming it.
        refused = submit(w, kind="federated", title="t", task="room-use",
                         params={"holders": ["pudong-node", "extra-node"], "epochs": 1})
        assert refused.status_code == 400 and "extra-node holds no partition of district-rooms" in \
            refused.json()["params.holders"][0]

        revoked = api_client(w.steward).post("/api/federation/nodes/extra-node/revoke/", {"reason": "key leaked"},
                                             format="json")
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert api_client(w.data_holder).post("/api/federation/nodes/pudong-node/revoke/", {},
                                              format="json").status_code == 403
        # The SuperLink has forgotten the key: the node cannot stay connected, nor join again.
        node_id = DistrictNode.objects.get(name="extra-node").flower_node_id
        wait_for(lambda: all(n["node-id"] != node_id or n["status"] != "online"
                             for n in standing_federation.client.supernodes()), timeout=120, interval=0.5,
                 what="the revoked node off the federation")
    finally:
        kill_tree(proc, signal.SIGKILL)
        proc.wait()
    log = home / "again.log"
    with open(log, "wb") as out:
        again = subprocess.Popen([sys.executable, "-m", "sandbox.federated.node", "start", "--home", str(home),
                                  "--superlink", ADDRESS, "--root-certificates", str(CA)], cwd=REPO, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:  # the SuperLink refuses it each time it tries
        wait_for(lambda: "activate SuperNode" in log.read_text(errors="replace"), timeout=120, interval=0.5,
                 what="the SuperLink to refuse the revoked node")
        assert _nodes(w.steward)["extra-node"]["state"] == "revoked"
        assert all(n["node-id"] != node_id or n["status"] != "online" for n in standing_federation.client.supernodes())
    finally:
        kill_tree(again, signal.SIGKILL)
        again.wait()
    # A revoked key is never registered again, and a job naming the node is refused.
    events = LineageEvent.objects.count()
    reused = api_client(w.steward).post("/api/federation/nodes/", {**body, "name": "extra-node-2"}, format="json")
    assert reused.status_code == 409 and "revoked" in reused.json()["detail"]
    refused = submit(w, kind="federated", title="t", task="room-use",
                     params={"holders": ["pudong-node", "extra-node"], "epochs": 1})
    assert refused.status_code == 400 and "extra-node was revoked" in refused.json()["params.holders"][0]
    assert LineageEvent.objects.count() == events
    kinds = list(LineageEvent.objects.filter(subject=f"federation.districtnode:{DistrictNode.objects.get(name='extra-node').pk}")
                 .values_list("event_type", flat=True))
    assert kinds == ["federation.node_registered", "federation.node_revoked"]


def test_a_partition_whose_schema_does_not_match_is_refused_and_code_jobs_stay_on_bureau_data(world,
                                                                                              standing_federation):
    from federation.models import NodePartition

    w = district_rooms(world, standing_federation)
    approve_lab(w)
    manifest = json.loads(json.dumps(standing_federation.nodes["huangpu-node"].manifest))
    manifest["fields"] = [f if f["name"] != "floor" else {"name": "floor", "type": "string"}
                          for f in manifest["fields"]]
    before = NodePartition.objects.get(node__name="huangpu-node").published_at
    client = api_client(w.holders["huangpu"])
    answer = client.post("/api/federation/nodes/huangpu-node/publish/", {"manifest": manifest}, format="json")
    assert answer.status_code == 400 and "schema does not match" in answer.json()["manifest.fields"][0]
    assert "floor" in answer.json()["manifest.fields"][0]
    rows = {**manifest, "rows": [{"unit_id": "R-1"}]}  # anything beyond what the catalog needs
    answer = client.post("/api/federation/nodes/huangpu-node/publish/", {"manifest": rows}, format="json")
    assert answer.status_code == 400 and "unexpected keys: rows" in answer.json()["manifest"][0]
    other = api_client(w.data_holder).post("/api/federation/nodes/huangpu-node/publish/",
                                           {"manifest": standing_federation.nodes["huangpu-node"].manifest},
                                           format="json")
    assert other.status_code == 404  # another district's node is not even visible
    assert NodePartition.objects.get(node__name="huangpu-node").published_at == before

    # Centralized DP and code-to-data stay on bureau-held data.
    refused = submit(w, kind="centralized", title="t", task="room-use", params={"epochs": 1})
    assert refused.status_code == 409 and "held by its districts' nodes" in refused.json()["detail"]
    from jobs import actions as job_actions
    from kernel.errors import Conflict

    with pytest.raises(Conflict, match="code-to-data runs on bureau-held data only"):
        job_actions.publish_syft_dataset(actor=w.steward, dataset=w.rooms)


def test_a_nodes_clientapps_come_from_its_warm_launcher_which_ends_with_its_supernode(standing_federation, tmp_path):
    """`node start` runs the SuperNode with `--isolation process` and the node's launcher beside
    it (each ClientApp forked from a process that has imported torch, not a fresh interpreter per
    message), and starts the SuperNode only once the launcher is warm, so that an online node
    starts a job's ClientApps at once; a SuperNode that dies leaves nothing of the node running."""
    import psutil

    home = tmp_path / "warm"
    node_tool("init", "--home", str(home), "--name", "warm-node")
    node_id = standing_federation.client.register(home / "keys" / "node.pub", "warm-node")
    log = home / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox.federated.node", "start", "--home", str(home),
                                 "--superlink", ADDRESS, "--root-certificates", str(CA)], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: any(n["node-id"] == node_id and n["status"] == "online"
                             for n in standing_federation.client.supernodes()), timeout=120, interval=0.5,
                 what="the node online")
        supernode = psutil.Process(proc.pid)  # `start` became the SuperNode (exec keeps the pid)
        argv = supernode.cmdline()
        assert argv[1:3] == ["-m", "sandbox.federated.supernode"], argv  # flower-supernode, its polls shortened
        assert argv[argv.index("--isolation") + 1] == "process"
        runtime = f"127.0.0.1:{argv[argv.index('--port') + 1]}"
        launchers = [p for p in supernode.children() if "sandbox.federated.launcher" in p.cmdline()]
        assert len(launchers) == 1, [p.cmdline() for p in supernode.children()]
        launcher = launchers[0]
        assert launcher.cmdline()[-6:-2] == ["--runtime-api-address", runtime, "--parent-pid", str(proc.pid)]
        text = log.read_text(errors="replace")
        assert "ClientApp launcher warm in" in text and "Starting Flower SuperNode" in text, text[-2000:]
        assert text.index("ClientApp launcher warm in") < text.index("Starting Flower SuperNode"), text[-2000:]
        assert not any("flower-superexec" in " ".join(p.cmdline()) for p in supernode.children(recursive=True))

        supernode.kill()  # the SuperNode alone, as an OOM kill would
        proc.wait()
        wait_for(lambda: not launcher.is_running() or launcher.status() == psutil.STATUS_ZOMBIE, timeout=30,
                 interval=0.2, what="the launcher to end with its SuperNode")
    finally:
        kill_tree(proc, signal.SIGKILL)
        proc.wait()
        standing_federation.client.unregister(node_id)
