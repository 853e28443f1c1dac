"""A job's lineage, exported and verified by tools nobody here wrote: a Node.js script written
from the README alone (npm canonicalize and ethers), and the W3C prov library's round trip
before ledger/verify_prov.py. Runs against the test anvil, as an auditor with a node would."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import REPO, api_client
from sandbox_support import add_rooms_corpus, approve_lab

pytestmark = [pytest.mark.ledger]

VERIFY_JS = REPO / "ledger" / "verify-js"
# Payload numbers that Python's json.dumps and JavaScript write differently.
FLOATS = {"delta": 1e-05, "target_epsilon": 3.0, "noise": 0.0, "rows": 1e16, "neg": -0.0, "third": 1 / 3}


def _rpc_url() -> str:
    from django.conf import settings

    return settings.CHAIN_RPC_URL


@pytest.fixture
def job_export(world, tmp_path):
    """A centralized job on the rooms, submitted and approved, its lineage anchored and exported."""
    from django.db import transaction

    from jobs import actions
    from provenance.anchoring import anchor_pending
    from provenance.recorder import record, subject_of

    rpc = _rpc_url()
    add_rooms_corpus(world, rooms=200)
    approve_lab(world)
    job = actions.submit_job(actor=world.researcher, dataset=world.rooms, kind="centralized", title="room use",
                             task="room-use", params={"epochs": 1, "target_epsilon": 3.0, "delta": 1e-5})
    job = actions.approve_job(actor=world.steward, job=job)
    with transaction.atomic():  # numbers a job's own events do not happen to hold (0.0, 1e16, -0.0, 1/3)
        record("admin.object_changed", actor="system", subject=f"tests.probe:{job.pk}", payload=FLOATS,
               inputs=[subject_of(job)])
    run = anchor_pending(force=True)
    assert run.error == "" and run.pending is None, run
    response = api_client(world.auditor).get("/api/lineage/prov/", {"subject": subject_of(job)})
    assert response.status_code == 200, response.content
    path = tmp_path / "job.prov.json"
    path.write_bytes(response.content)
    return path, json.loads(response.content), rpc


def _node_verify(path, rpc) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/bootstrap.sh --test installs the verifier's packages)"
    result = subprocess.run([node, str(VERIFY_JS / "verify.mjs"), str(path), "--rpc", rpc, "--json"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return {"code": result.returncode, **json.loads(result.stdout)}


@pytest.mark.django_db
def test_a_job_lineage_verifies_in_node_from_the_readme_and_after_a_prov_round_trip(job_export, tmp_path, capsys):
    from provenance.models import LineageEvent

    path, doc, rpc = job_export
    events = {a["miliao:seq"]: a for a in doc["activity"].values()}
    assert len(events) >= 6 and {a["miliao:hashVersion"] for a in events.values()} == {2}
    payloads = " ".join(a["miliao:payload"] for a in events.values())
    for text in ('"delta":0.00001', '"target_epsilon":3', '"noise":0', '"rows":10000000000000000'):
        assert text in payloads
    export = doc["entity"]["miliao:export"]
    assert {f["name"] for f in json.loads(export["miliao:registryAbi"])} >= {"anchorOfRoot", "lastSeq"}

    report = _node_verify(path, rpc)
    assert report["code"] == 0 and report["ok"], report
    assert report["chainId"] == export["miliao:chainId"] and report["registry"] == export["miliao:registry"]
    # Every event hash the script computed is the one the platform stored, and each was proved on chain.
    stored = dict(LineageEvent.objects.filter(seq__in=events).values_list("seq", "hash"))
    assert {r["seq"]: r["hash"] for r in report["results"] if r["ok"]} == stored

    # One changed digit of a payload number: the script names that event and no other.
    probe = next(a for a in events.values() if a["miliao:eventType"] == "admin.object_changed")
    probe["miliao:payload"] = probe["miliao:payload"].replace('"delta":0.00001', '"delta":0.00002')
    forged = tmp_path / "forged.prov.json"
    forged.write_text(json.dumps(doc))
    report = _node_verify(forged, rpc)
    assert report["code"] == 1
    assert [r["seq"] for r in report["results"] if not r["ok"]] == [probe["miliao:seq"]]

    # The same export after a round trip through the W3C prov library, which rewrites times,
    # qualified names and typed values: ledger/verify_prov.py still verifies every event.
    from prov.model import ProvDocument

    from ledger import verify_prov

    again = tmp_path / "again.prov.json"
    again.write_text(ProvDocument.deserialize(source=str(path), format="json").serialize(format="json"))
    assert "+00:00" in again.read_text()  # the prov library rewrites every time's zone
    capsys.readouterr()
    assert verify_prov.main([str(again), "--rpc", rpc]) == 0  # its command line, in this process
    out = capsys.readouterr().out
    assert "RESULT: VERIFIED" in out and f"{len(events)} events: {len(events)} verified" in out, out
