"""Lineage for auditors: the graph, inclusion proofs, verification against the chain
(with every kind of tampering named), PROV-JSON export and its outside verifier."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from conftest import REPO, api_client, tamper

pytestmark = [pytest.mark.ledger]


def subject(obj) -> str:
    from provenance.recorder import subject_of

    return subject_of(obj)


def anchor_all():
    from provenance.anchoring import anchor_pending

    run = anchor_pending(force=True)
    assert run.error == "" and run.pending is None, run
    return run


def seq_of(event_type: str, subj: str) -> int:
    from provenance.models import LineageEvent

    return LineageEvent.objects.get(event_type=event_type, subject=subj).seq


def verify(subj: str):
    from provenance.lineage import verify_lineage

    return verify_lineage(subj)


def kinds(report) -> set[tuple[int, str]]:
    return {(f.seq, f.kind) for f in report.findings}


# ---- the graph --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_release_traces_back_to_its_dataset_corpus_version_and_policy(release_world):
    w = release_world
    response = api_client(w.auditor).get("/api/lineage/", {"subject": subject(w.release)})
    assert response.status_code == 200, response.content
    graph = response.json()
    nodes = {n["subject"]: n for n in graph["nodes"]}
    assert set(nodes) == {subject(w.roads), subject(w.corpus), subject(w.policy), subject(w.release)}
    edges = {(e["source"], e["subject"]) for e in graph["edges"]}
    assert edges == {
        (subject(w.roads), subject(w.corpus)),
        (subject(w.roads), subject(w.policy)),
        (subject(w.corpus), subject(w.release)),
        (subject(w.policy), subject(w.release)),
    }
    assert nodes[subject(w.release)]["depth"] == 0 and nodes[subject(w.roads)]["depth"] == -2
    assert [e["event_type"] for e in nodes[subject(w.release)]["events"]] == [
        "releases.release_started", "releases.release_built",
    ]
    # From the dataset, the same lineage reads downwards.
    down = api_client(w.auditor).get("/api/lineage/", {"subject": subject(w.roads)}).json()
    assert {n["subject"]: n["depth"] for n in down["nodes"]}[subject(w.release)] == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,status,text",
    [
        ({}, 400, "subject"),
        ({"subject": "not an artifact"}, 400, "releases.release:7"),
        ({"subject": "releases.release:999999"}, 404, "no event was recorded"),
    ],
)
def test_a_bad_artifact_name_is_refused_clearly(world, params, status, text):
    response = api_client(world.auditor).get("/api/lineage/", params)
    assert response.status_code == status and text in response.content.decode()


# ---- verification -----------------------------------------------------------------


@pytest.mark.django_db
def test_an_anchored_release_verifies_through_api_and_command(release_world, capsys):
    w = release_world
    anchor_all()
    response = api_client(w.auditor).post("/api/lineage/verify/", {"subject": subject(w.release)}, format="json")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True and report["findings"] == [] and report["unanchored"] == []
    assert report["anchored"] == report["events"] == 5
    assert all(root["on_chain"] for root in report["roots"])
    call_command("verify_lineage", subject(w.release))
    assert "OK" in capsys.readouterr().out


@pytest.mark.django_db
def test_events_not_yet_anchored_are_listed_not_passed_off_as_proved(world):
    report = verify(subject(world.app_startup))
    assert report.findings == [] and report.anchored == 0
    assert report.unanchored == sorted(
        [seq_of("catalog.dataset_registered", subject(world.pipes)),
         seq_of("access.application_submitted", subject(world.app_startup))]
    )


def _app_lineage(world):
    anchor_all()
    app = subject(world.app_startup)
    return app, seq_of("access.application_submitted", app), seq_of("catalog.dataset_registered", subject(world.pipes))


def _command_fails(subj, match):
    with pytest.raises(CommandError, match=match):
        call_command("verify_lineage", subj)


@pytest.mark.django_db
def test_an_edited_event_is_named(world):
    app, app_seq, _ = _app_lineage(world)
    tamper(("UPDATE provenance_lineageevent SET payload = %s WHERE seq = %s",
            ['{"dataset":"pudong-pipes","inputs":["catalog.dataset:1"],"organisation":"x","purpose":"y"}', app_seq]))
    report = verify(app)
    assert {(app_seq, "edited"), (app_seq, "proof_mismatch")} <= kinds(report)
    _command_fails(app, rf"event {app_seq}: edited")


@pytest.mark.django_db
def test_an_edited_and_rehashed_event_is_named(world):
    from ledger.chain import event_hash
    from provenance.models import LineageEvent

    app, _, ds_seq = _app_lineage(world)
    rec = LineageEvent.objects.get(seq=ds_seq).as_record()
    forged = event_hash(seq=ds_seq, prev_hash=rec.prev_hash, event_type=rec.event_type, actor="user:1:mallory",
                        subject=rec.subject, payload=rec.payload, recorded_at=rec.recorded_at)
    tamper(("UPDATE provenance_lineageevent SET actor = 'user:1:mallory', hash = %s WHERE seq = %s", [forged, ds_seq]))
    report = verify(app)
    # The next event still points at the original hash, and the Merkle path no longer
    # leads to the root on the chain.
    assert {(ds_seq, "edited"), (ds_seq, "proof_mismatch")} <= kinds(report)


@pytest.mark.django_db
def test_a_deleted_event_is_named(world):
    app, app_seq, _ = _app_lineage(world)
    tamper(("DELETE FROM provenance_lineageevent WHERE seq = %s", [app_seq - 1]))
    report = verify(app)
    assert (app_seq - 1, "deleted") in kinds(report)
    _command_fails(app, rf"event {app_seq - 1}: deleted")


@pytest.mark.django_db
def test_an_inserted_event_is_named(world):
    from ledger.chain import link
    from provenance.models import LineageEvent

    app, app_seq, _ = _app_lineage(world)
    prev = LineageEvent.objects.get(seq=app_seq - 1).as_record()
    forged = link(prev, event_type="access.application_approved", actor="user:1:mallory",
                  subject="access.application:99", payload={"reason": "backdated"}, recorded_at=prev.recorded_at)
    tamper(
        ("UPDATE provenance_lineageevent SET seq = -(seq + 1) WHERE seq >= %s", [app_seq]),
        ("UPDATE provenance_lineageevent SET seq = -seq WHERE seq < 0", []),
        ("INSERT INTO provenance_lineageevent (seq, prev_hash, hash, event_type, actor, subject, payload, recorded_at,"
         " hash_version) SELECT %s, %s, %s, %s, %s, %s, %s, recorded_at, %s FROM provenance_lineageevent WHERE seq = %s",
         [app_seq, forged.prev_hash, forged.hash, forged.event_type, forged.actor, forged.subject, forged.payload,
          forged.version, app_seq - 1]),
    )
    report = verify(app)
    assert (app_seq, "inserted") in kinds(report)
    assert any(k == "proof_mismatch" for _s, k in kinds(report))


@pytest.mark.django_db
def test_reordered_events_are_named(world):
    app, app_seq, _ = _app_lineage(world)
    tamper(
        ("UPDATE provenance_lineageevent SET seq = -1 WHERE seq = %s", [app_seq]),
        ("UPDATE provenance_lineageevent SET seq = %s WHERE seq = %s", [app_seq, app_seq + 1]),
        ("UPDATE provenance_lineageevent SET seq = %s WHERE seq = -1", [app_seq + 1]),
    )
    report = verify(app)
    assert any(k == "reordered" for _s, k in kinds(report)), report.findings
    _command_fails(app, "reordered")


@pytest.mark.django_db
def test_a_root_that_is_not_on_the_chain_is_named(world):
    from provenance.models import Anchor

    app, app_seq, ds_seq = _app_lineage(world)
    Anchor.objects.update(root="cd" * 32)  # the database now claims a root the chain never saw
    report = verify(app)
    assert {(app_seq, "not_on_chain"), (ds_seq, "not_on_chain")} <= kinds(report)
    _command_fails(app, "not_on_chain")


@pytest.mark.django_db
def test_a_changed_lineage_index_is_named(world):
    from provenance.models import LineageLink

    app, app_seq, _ = _app_lineage(world)
    LineageLink.objects.filter(seq=app_seq).update(source="catalog.dataset:999")
    report = verify(app)
    assert (app_seq, "link_mismatch") in kinds(report)


# ---- proofs and export ------------------------------------------------------------


@pytest.mark.django_db
def test_an_event_proof_leads_to_the_root_on_chain(world):
    from ledger import merkle
    from provenance import chain

    app, app_seq, _ = _app_lineage(world)
    client = api_client(world.auditor)
    proof = client.get(f"/api/events/{app_seq}/proof/").json()
    event = client.get(f"/api/events/{app_seq}/").json()
    assert merkle.InclusionProof(proof["leaf_index"], proof["tree_size"], tuple(proof["path"]), proof["root"]).verify(
        event["hash"]
    )
    on_chain = chain.connect().registry.anchor_of_root(proof["root"])
    assert on_chain.first_seq <= app_seq <= on_chain.last_seq
    assert proof["anchor"]["tx_hash"].startswith("0x") and proof["anchor"]["block_number"] == on_chain.block_number


@pytest.mark.django_db
def test_an_unanchored_event_has_no_proof_yet_and_says_so(world):
    response = api_client(world.auditor).get("/api/events/3/proof/")
    assert response.status_code == 404
    assert "not anchored yet" in response.json()["detail"] and response.json()["anchoring"]["unanchored"] > 0


def readme_verification_lines(rpc_url: str) -> str:
    """The README's shell lines for verifying a demo lineage from outside, on ``rpc_url``
    instead of the demo's node, without the line that exports the lineage from the demo."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- verify-lineage:begin -->", 1)[1].split("<!-- verify-lineage:end -->", 1)[0]
    lines = block.strip().removeprefix("```sh").removesuffix("```").strip().splitlines()
    assert lines[0] == "RPC=http://127.0.0.1:8545" and "manage.py export_prov" in lines[2], lines
    return "\n".join([f"RPC={rpc_url}", *lines[1:2], *lines[3:]])


@pytest.mark.django_db
def test_prov_export_is_checked_by_the_standalone_verifier_and_cast(release_world, tmp_path):
    from django.conf import settings

    from provenance import chain

    w = release_world
    anchor_all()
    response = api_client(w.auditor).get("/api/lineage/prov/", {"subject": subject(w.release)})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    doc = response.json()
    activities = doc["activity"]
    assert len(activities) == 5 and all("miliao:merklePath" in a for a in activities.values())
    assert {d["prov:usedEntity"] for d in doc["wasDerivedFrom"].values()} >= {
        "miliao:corpora.corpusversion/%d" % w.corpus.pk, "miliao:catalog.dataset/%d" % w.roads.pk,
    }
    assert doc["entity"]["miliao:export"]["miliao:chainRpc"] == settings.CHAIN_PUBLIC_RPC_URL == settings.CHAIN_RPC_URL

    # The README's lines for verifying a demo lineage from outside, as they stand, against this
    # suite's anvil: verify_prov.py, then foundry's cast reading the registry the export names.
    # The export comes from the API (the lineage page's download) rather than export_prov.
    (tmp_path / "lineage.json").write_text(json.dumps(doc))
    for name in (".venv", "ledger"):
        (tmp_path / name).symlink_to(REPO / name)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_verification_lines(settings.CHAIN_RPC_URL)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.splitlines()
    assert out[out.index("RESULT: VERIFIED") + 1:][:3] == [str(chain.connect().chain_id)] * 2 + ["true"], result.stdout
    anchored = next(iter(activities.values()))
    index, fields = out[-2], out[-1].strip("()").split(", ")
    on_chain = chain.connect().registry.anchor_of_root(anchored["miliao:root"])
    assert int(index) == on_chain.index and fields[0] == "0x" + anchored["miliao:root"]
    assert [int(fields[2].split()[0]), int(fields[3].split()[0])] == [anchored["miliao:anchorFirstSeq"],
                                                                      anchored["miliao:anchorLastSeq"]]
    assert int(fields[4].split()[0]) == anchored["miliao:blockNumber"]
    verifier = [sys.executable, str(REPO / "ledger" / "verify_prov.py")]

    forged_seq, forged = next(iter((a["miliao:seq"], a) for a in activities.values()))
    forged["miliao:actor"] = "user:1:mallory"
    bad = tmp_path / "forged.prov.json"
    bad.write_text(json.dumps(doc))
    result = subprocess.run([*verifier, str(bad), "--rpc", settings.CHAIN_RPC_URL], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and str(forged_seq) in result.stdout


@pytest.mark.django_db
def test_export_prov_command_writes_a_file(world, tmp_path):
    out = tmp_path / "app.prov.json"
    call_command("export_prov", subject(world.app_startup), "-o", str(out))
    doc = json.loads(out.read_text())
    assert doc["entity"]["miliao:export"]["miliao:artifact"] == subject(world.app_startup)
    with pytest.raises(CommandError, match="no event was recorded"):
        call_command("export_prov", "releases.release:424242")


@pytest.mark.django_db
def test_ledger_status_shows_the_anchoring_lag(world):
    client = api_client(world.steward)
    before = client.get("/api/anchors/status/").json()
    assert before["unanchored"] == before["head_seq"] > 0 and before["anchored_seq"] == 0
    anchor_all()
    after = client.get("/api/anchors/status/").json()
    assert after["unanchored"] == 0 and after["anchored_seq"] == before["head_seq"]
    anchors = client.get("/api/anchors/").json()["results"]
    assert anchors[0]["status"] == "confirmed" and anchors[0]["last_seq"] == before["head_seq"]


# ---- the whole log against the chain ----------------------------------------------


@pytest.mark.django_db
def test_verify_events_names_a_tail_truncated_after_anchoring(world):
    from provenance.models import LineageEvent
    from provenance.verification import verify_event_log

    anchor_all()
    head = LineageEvent.objects.order_by("-seq").first().seq
    tamper(("DELETE FROM provenance_lineageevent WHERE seq >= %s", [head - 1]))
    report = verify_event_log()
    assert (report.tamper.kind, report.tamper.seq) == ("deleted", head - 1)
    with pytest.raises(CommandError, match=f"events {head - 1} to {head} were anchored on the chain but are gone"):
        call_command("verify_events")


@pytest.mark.django_db
def test_verify_events_names_a_correctly_chained_forgery_in_place_of_anchored_events(world):
    from django.db import transaction

    from provenance.models import LineageEvent
    from provenance.recorder import NewEvent, record_many
    from provenance.verification import verify_event_log

    anchor_all()
    head = LineageEvent.objects.order_by("-seq").first().seq
    tamper(("DELETE FROM provenance_lineageevent WHERE seq >= %s", [head - 1]))
    with transaction.atomic():  # rewritten history that links perfectly to what is left
        record_many([NewEvent("access.application_approved", "user:1:mallory", "access.application:1", {"n": i})
                     for i in range(2)])
    report = verify_event_log()
    assert report.tamper.kind == "edited" and "replaced after anchoring" in report.tamper.message
