"""ledger/verify_prov.py, the auditor's standalone verifier of PROV-JSON lineage exports.

Exports are built here the way platform/provenance/lineage.py ``prov_document``
builds them (events from ledger.chain.link, proofs from ledger.merkle, roots
anchored with ledger.registry on a real EVM), then tampered with as an outsider
holding the file could. No Django database is involved.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3
from web3.middleware import Web3Middleware

from ledger import merkle
from ledger import verify_prov as vp
from ledger.chain import event_hash, link
from ledger.registry import Registry

pytestmark = pytest.mark.ledger

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ledger" / "verify_prov.py"
PROV_NS = "https://miliao.example/ns/prov#"
ZERO_ROOT = "0" * 64


# ---- building exports ----------------------------------------------------------------


def make_events(count: int):
    """A small lineage (dataset -> corpus -> release -> release) among filler events."""
    lineage = {
        1: ("dataset.registered", "steward:3", "catalog.dataset:1", {"title": "地下管线", "scale": 0.1}),
        2: ("corpus.built", "system", "corpora.corpus:1",
            {"inputs": ["catalog.dataset:1"], "rows": 1e16, "crs": "EPSG:4490", "bbox": [121.4, 31.1, 121.6, 31.3]}),
        3: ("release.built", "holder:5", "releases.release:7",
            {"inputs": ["corpora.corpus:1"], "note": "第一版 \"quoted\" back\\slash\ttab\n", "meta": {"b": 1, "a": {"z": [], "y": None}}}),
        4: ("release.approved", "steward:3", "releases.release:7", {"by": "审批人", "ok": True}),
        301: ("release.built", "holder:5", "releases.release:8",
              {"inputs": ["catalog.dataset:1", "releases.release:7"], "epsilon": 0.5}),
    }
    events, prev = [], None
    for seq in range(1, count + 1):
        event_type, actor, subject, payload = lineage.get(
            seq, ("application.submitted", f"applicant:{seq % 7}", f"access.application:{seq}", {"n": seq, "π": 3.14})
        )
        prev = link(prev, event_type=event_type, actor=actor, subject=subject, payload=payload,
                    recorded_at=f"2024-05-01T{8 + seq // 3600:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}.123456Z")
        events.append(prev)
    return events


@dataclass
class Batch:
    first: int
    last: int
    pages: list[bytes]
    root: str
    tx_hash: str | None = None
    block_number: int | None = None


def make_batch(events, first: int, last: int) -> Batch:
    pages = merkle.page_roots([e.hash for e in events[first - 1 : last]])
    return Batch(first, last, pages, merkle.batch_root(pages).hex())


def prove(events, batch: Batch, seq: int) -> merkle.InclusionProof:
    leaf = seq - batch.first
    page = leaf // merkle.PAGE_SIZE
    lo = batch.first + page * merkle.PAGE_SIZE
    hi = min(lo + merkle.PAGE_SIZE - 1, batch.last)
    return merkle.prove(leaf, batch.last - batch.first + 1, [e.hash for e in events[lo - 1 : hi]], batch.pages)


def _qn(subject: str) -> str:
    return "miliao:" + subject.replace(":", "/")


def build_export(events, seqs, batches, *, chain_id: int, registry: str) -> dict:
    """A PROV-JSON document shaped as lineage.prov_document writes it."""
    doc = {
        "prefix": {"miliao": PROV_NS, "xsd": "http://www.w3.org/2001/XMLSchema#"},
        "entity": {}, "activity": {}, "agent": {},
        "wasGeneratedBy": {}, "used": {}, "wasDerivedFrom": {}, "wasAssociatedWith": {},
    }
    chosen = [events[s - 1] for s in sorted(seqs)]
    subjects = {e.subject for e in chosen}
    for subject in subjects:
        kind = subject.partition(":")[0]
        doc["entity"][_qn(subject)] = {"prov:type": f"miliao:{kind}", "prov:label": subject, "miliao:subject": subject}
    edges = []
    for rec in chosen:
        act_id = f"miliao:event/{rec.seq}"
        activity = {
            "prov:type": {"$": f"miliao:{rec.event_type}", "type": "prov:QUALIFIED_NAME"},
            "prov:startTime": rec.recorded_at,
            "prov:endTime": rec.recorded_at,
            "miliao:seq": rec.seq,
            "miliao:prevHash": rec.prev_hash,
            "miliao:hash": rec.hash,
            "miliao:eventType": rec.event_type,
            "miliao:actor": rec.actor,
            "miliao:subject": rec.subject,
            "miliao:payload": rec.payload,
            "miliao:recordedAt": rec.recorded_at,
            "miliao:hashVersion": rec.version,
        }
        batch = next((b for b in batches if b.first <= rec.seq <= b.last), None)
        if batch is not None:
            proof = prove(events, batch, rec.seq)
            activity.update({
                "miliao:leafIndex": proof.leaf_index,
                "miliao:treeSize": proof.tree_size,
                "miliao:merklePath": list(proof.path),
                "miliao:root": proof.root,
                "miliao:anchorFirstSeq": batch.first,
                "miliao:anchorLastSeq": batch.last,
                "miliao:txHash": batch.tx_hash,
                "miliao:blockNumber": batch.block_number,
                "miliao:chainId": chain_id,
                "miliao:registry": registry,
            })
        doc["activity"][act_id] = activity
        agent_id = "miliao:agent/" + rec.actor
        doc["agent"].setdefault(agent_id, {"prov:label": rec.actor})
        doc["wasAssociatedWith"][f"_:assoc{rec.seq}"] = {"prov:activity": act_id, "prov:agent": agent_id}
        doc["wasGeneratedBy"][f"_:gen{rec.seq}"] = {"prov:entity": _qn(rec.subject), "prov:activity": act_id}
        for source in json.loads(rec.payload).get("inputs", []):
            if source in subjects:
                edges.append((source, rec.subject, rec.seq))
    for n, (source, derived, seq) in enumerate(sorted(edges)):
        act_id = f"miliao:event/{seq}"
        doc["used"][f"_:use{n}"] = {"prov:activity": act_id, "prov:entity": _qn(source)}
        doc["wasDerivedFrom"][f"_:der{n}"] = {
            "prov:generatedEntity": _qn(derived), "prov:usedEntity": _qn(source), "prov:activity": act_id,
        }
    doc["entity"]["miliao:export"] = {"prov:type": "miliao:lineageExport", "miliao:artifact": "releases.release:8"}
    return json.loads(json.dumps(doc))  # exactly what a file round-trip gives


def anchor(registry: Registry, account, batch: Batch, prev_root: str) -> None:
    tx_hash, _nonce = registry.send_anchor(
        account, root=batch.root, first_seq=batch.first, last_seq=batch.last, prev_root=prev_root
    )
    receipt = registry.wait_for_receipt(tx_hash, timeout=30)
    assert receipt is not None and receipt["status"] == 1, receipt
    batch.tx_hash, batch.block_number = tx_hash, receipt["blockNumber"]


def funded_account(w3: Web3):
    account = Account.create()
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address, "value": Web3.to_wei(10, "ether")})
    w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    return account


@dataclass
class World:
    w3: Web3
    registry: Registry
    account: object
    events: list
    anchored: list[Batch]  # 1..300 (two pages) and 301..305, on the chain
    loose: Batch  # 306..308: a root computed but never sent

    def export(self, seqs, batches=None) -> dict:
        return build_export(self.events, seqs, self.anchored if batches is None else batches,
                            chain_id=self.w3.eth.chain_id, registry=self.registry.address)


GOOD_SEQS = [1, 2, 3, 4, 150, 255, 256, 257, 299, 300, 301, 302, 303, 304, 305]


def build_world(w3: Web3) -> World:
    account = funded_account(w3)
    registry, _ = Registry.deploy(w3, account)
    events = make_events(310)
    batches = [make_batch(events, 1, 300), make_batch(events, 301, 305)]
    prev = ZERO_ROOT
    for batch in batches:
        anchor(registry, account, batch, prev)
        prev = batch.root
    return World(w3, registry, account, events, batches, make_batch(events, 306, 308))


@pytest.fixture(scope="module")
def world(anvil_url) -> World:
    return build_world(Web3(Web3.HTTPProvider(anvil_url, request_kwargs={"timeout": 30})))


@pytest.fixture
def good(world) -> dict:
    return world.export(GOOD_SEQS)


def act(doc: dict, seq: int) -> dict:
    return doc["activity"][f"miliao:event/{seq}"]


def checks(report, seq: int) -> set[str]:
    return {p.check for p in report.event(seq).problems}


# ---- the hash function -----------------------------------------------------------------


TRICKY_PAYLOADS = [
    {"title": "地下管线 · 浦东新区", "emoji": "🛰️"},
    {"z": {"b": [1, {"y": 2, "x": [None, True, False]}], "a": {}}, "A": [], "": ""},
    {"f": 0.1, "big": 1e16, "small": 1e-7, "neg": -0.0, "third": 1 / 3, "int": 2**64, "exp": 1.5e300},
    {"esc": "quote \" backslash \\ slash / tab \t newline \n nul \u0000 bell \u0007 del \u007f"},
    {"surrogates": "\U0001f600", "ls": "\u2028\u2029", "bidi": "\u202e"},
    {"keys by code point": {"é": 1, "e": 2, "Z": 3, "a": 4, "中": 5, "ab": 6, "a\u0000": 7}},
]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
def test_hash_agrees_with_the_platform_on_tricky_payloads(payload, version):
    rec = link(None, event_type="release.built", actor="steward:3", subject="releases.release:7",
               payload=payload, recorded_at="2024-05-01T08:00:00Z", version=version)
    fields = dict(seq=rec.seq, prev_hash=rec.prev_hash, event_type=rec.event_type, actor=rec.actor,
                  subject=rec.subject, payload=rec.payload, recorded_at=rec.recorded_at, version=version)
    assert vp.event_hash(**fields) == event_hash(**fields) == rec.hash


@pytest.mark.parametrize("text", [
    '{"b": 1, "a": [1.0, 1E16, 0.10, 1e-7]}',  # not canonical: whitespace, order, number spelling
    '{"t": "\\u4e2d\\u6587", "e": "\\ud83d\\ude00", "s": "\\/"}',  # escapes that parse to other text
    '{"n": 12345678901234567890123, "neg": -0, "f": 100000000000000000.0}',
    '{"dup": 1, "dup": 2}',
])
@pytest.mark.parametrize("version", [1, 2])
def test_hash_agrees_with_the_platform_on_non_canonical_payload_text(text, version):
    fields = dict(seq=42, prev_hash="ab" * 32, event_type="corpus.built", actor="系统", subject="corpora.corpus:1",
                  payload=text, recorded_at="2024-05-01T08:00:00.5Z", version=version)
    assert vp.event_hash(**fields) == event_hash(**fields)


def test_merkle_fold_matches_the_platform_for_every_leaf_of_odd_trees():
    for size in (1, 2, 3, 5, 7, 8, 13):
        hashes = [f"{i:064x}" for i in range(size)]
        leaves = [merkle.leaf_hash(h) for h in hashes]
        root = merkle.root_of_nodes(leaves)
        for index in range(size):
            path = merkle.audit_path(index, leaves)
            assert vp.root_from_path(vp.leaf_hash(hashes[index]), index, size, path) == root
            if path:
                assert vp.root_from_path(vp.leaf_hash(hashes[index]), index, size, path[:-1]) is None
                assert vp.root_from_path(vp.leaf_hash(hashes[index]), index, size, path + [root]) is None


def test_the_script_imports_only_the_standard_library_web3_and_rfc8785():
    tree = ast.parse(SCRIPT.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the script is copied out of the repo"
            modules.add(node.module.split(".")[0])
    assert modules - set(sys.stdlib_module_names) == {"web3", "rfc8785"}


# ---- verification in-process, against anvil ----------------------------------------------


def test_good_export_verifies_with_one_call_per_root(world, good):
    calls = []

    class Counting(Web3Middleware):
        def request_processor(self, method, params):
            calls.append(method)
            return method, params

    world.w3.middleware_onion.add(Counting, name="counting")
    try:
        report = vp.verify(good, world.w3)
    finally:
        world.w3.middleware_onion.remove("counting")
    assert report.ok and report.exit_code == 0, report.human()
    assert [e.seq for e in report.events] == GOOD_SEQS
    assert {e.status for e in report.events} == {"ok"}
    assert not any(e.warnings for e in report.events)
    assert report.chain_id == world.w3.eth.chain_id
    assert calls.count("eth_call") == 2  # two distinct roots, each read once
    assert set(report.roots) == {b.root for b in world.anchored}
    first = report.roots[world.anchored[0].root]
    assert first["on_chain"] and (first["first_seq"], first["last_seq"]) == (1, 300)
    assert report.roots[world.anchored[1].root]["prev_root"] == world.anchored[0].root
    data = report.to_dict()
    json.dumps(data)
    assert data["summary"] == {"events": 15, "verified": 15, "failed": 0, "not_anchored": 0, "warnings": 0,
                               "roots": 2, "roots_on_chain": 2}
    assert "RESULT: VERIFIED" in report.human()


def test_registry_given_explicitly_verifies(world, good):
    assert vp.verify(good, world.w3, registry=world.registry.address.lower()).ok


def test_edited_payload_is_a_hash_mismatch_named_by_seq(world, good):
    payload = json.loads(act(good, 150)["miliao:payload"])
    payload["n"] = 151
    act(good, 150)["miliao:payload"] = json.dumps(payload, ensure_ascii=False)
    report = vp.verify(good, world.w3)
    assert report.exit_code == 1
    assert checks(report, 150) == {"hash"}
    assert "seq 150" in report.event(150).problems[0].message
    assert [e.seq for e in report.events if e.status != "ok"] == [150]
    assert "seq      150" in report.human() and "FAIL  event hash mismatch" in report.human()


def test_edited_payload_that_is_not_json(world, good):
    act(good, 4)["miliao:payload"] = '{"by": "审批人", "ok": tru'
    report = vp.verify(good, world.w3)
    assert checks(report, 4) == {"hash"}
    assert "not valid JSON" in report.event(4).problems[0].message


def test_edited_hash_breaks_the_chain_link_and_the_merkle_proof(world, good):
    act(good, 256)["miliao:hash"] = "f" * 64
    report = vp.verify(good, world.w3)
    assert checks(report, 256) == {"hash", "merkle"}
    assert checks(report, 257) == {"chain_link"}
    assert "seq 257" in report.event(257).problems[0].message
    assert [e.seq for e in report.events if e.status != "ok"] == [256, 257]


def test_rehashed_edit_still_fails_the_merkle_proof(world, good):
    # An editor who also recomputes the hash (and the next event's prevHash) is caught by the anchor.
    a = act(good, 302)
    payload = json.loads(a["miliao:payload"])
    payload["n"] = 0
    a["miliao:payload"] = json.dumps(payload)
    a["miliao:hash"] = event_hash(seq=302, prev_hash=a["miliao:prevHash"], event_type=a["miliao:eventType"],
                                  actor=a["miliao:actor"], subject=a["miliao:subject"], payload=a["miliao:payload"],
                                  recorded_at=a["miliao:recordedAt"])
    act(good, 303)["miliao:prevHash"] = a["miliao:hash"]
    report = vp.verify(good, world.w3)
    assert checks(report, 302) == {"merkle"}
    assert checks(report, 303) == {"hash"}  # its prevHash is hashed too


def test_changed_path_element_fails_the_merkle_check(world, good):
    path = act(good, 150)["miliao:merklePath"]
    path[3] = path[3][:-1] + ("0" if path[3][-1] != "0" else "1")
    report = vp.verify(good, world.w3)
    assert checks(report, 150) == {"merkle"}
    assert "Merkle path mismatch" in report.event(150).problems[0].message
    assert report.exit_code == 1


def test_truncated_path_and_moved_leaf_fail_the_merkle_check(world, good):
    act(good, 150)["miliao:merklePath"].pop()
    act(good, 3)["miliao:leafIndex"] = 3
    report = vp.verify(good, world.w3)
    assert checks(report, 150) == {"merkle"}
    assert "does not fit" in report.event(150).problems[0].message
    assert checks(report, 3) == {"anchor_range", "merkle"}


def test_root_never_anchored_is_not_on_the_chain(world):
    doc = world.export([306, 307, 308], batches=[world.loose])
    report = vp.verify(doc, world.w3)
    assert report.exit_code == 1
    for seq in (306, 307, 308):
        assert checks(report, seq) == {"root_not_on_chain"}, report.human()
        assert "root not on the chain" in report.event(seq).problems[0].message
    assert report.roots[world.loose.root]["on_chain"] is False


def test_root_anchored_for_another_range(world, good):
    for seq in (301, 302):
        act(good, seq)["miliao:anchorLastSeq"] = 306
        act(good, seq)["miliao:treeSize"] = 6
    report = vp.verify(good, world.w3)
    assert "anchor_mismatch" in checks(report, 301)
    assert "301–305" in " ".join(p.message for p in report.event(301).problems)


def test_wrong_chain_id(world, good):
    for a in good["activity"].values():
        a["miliao:chainId"] = 1
    report = vp.verify(good, world.w3)
    assert {e.status for e in report.events} == {"fail"}
    assert checks(report, 1) == {"chain_id"}
    assert f"node is chain {world.w3.eth.chain_id}" in report.event(1).problems[0].message


def test_other_registry_given_on_the_command_line(world, good):
    other = Account.create().address
    report = vp.verify(good, world.w3, registry=other)
    assert checks(report, 1) == {"registry"}
    # The same, with the export not naming its registry: the given one has no contract.
    for a in good["activity"].values():
        del a["miliao:registry"]
    assert checks(vp.verify(good, world.w3, registry=other), 1) == {"no_contract"}
    assert checks(vp.verify(good, world.w3), 1) == {"registry"}


def test_unanchored_event_is_reported_distinctly(world):
    doc = world.export(GOOD_SEQS + [306])
    report = vp.verify(doc, world.w3)
    assert report.exit_code == 1
    assert report.event(306).status == "not_anchored"
    assert "not anchored yet" in report.event(306).problems[0].message
    assert [e.seq for e in report.events if e.status != "ok"] == [306]
    assert report.to_dict()["summary"]["not_anchored"] == 1
    assert "NOT ANCHORED  not anchored yet" in report.human()


def test_moved_anchor_transaction_is_only_a_warning(world, good):
    for seq in (301, 302, 303, 304, 305):
        act(good, seq)["miliao:txHash"] = "0x" + "ab" * 32
    report = vp.verify(good, world.w3)
    assert report.ok
    assert any("not known to the node" in w for w in report.event(301).warnings)


def test_forged_lineage_edge_is_caught(world, good):
    good["used"]["_:forged"] = {"prov:activity": "miliao:event/4", "prov:entity": "miliao:catalog.dataset/1"}
    good["wasGeneratedBy"]["_:gen3"]["prov:entity"] = "miliao:releases.release/99"
    report = vp.verify(good, world.w3)
    assert checks(report, 4) == {"prov"}
    assert checks(report, 3) == {"prov"}
    good = copy.deepcopy(good)
    good["used"]["_:dangling"] = {"prov:activity": "miliao:event/9", "prov:entity": "miliao:catalog.dataset/1"}
    assert any("not in the export" in p.message for p in vp.verify(good, world.w3).problems)


def test_times_are_compared_as_instants_and_types_as_qualified_names(world, good):
    # What a PROV tool may write for the same instant and the same qualified name.
    act(good, 3)["prov:startTime"] = act(good, 3)["miliao:recordedAt"].replace("Z", "+00:00")
    act(good, 3)["prov:endTime"] = {"$": "2024-05-01T16:00:03.123456+08:00", "type": "xsd:dateTime"}
    good["prefix"]["m"] = PROV_NS
    act(good, 4)["prov:type"] = {"$": "m:release.approved", "type": "prov:QUALIFIED_NAME"}
    assert vp.verify(good, world.w3).ok
    act(good, 3)["prov:endTime"] = "2024-05-01T08:00:03.123456+08:00"  # the same text, another instant
    act(good, 4)["prov:type"] = {"$": "miliao:release.built", "type": "prov:QUALIFIED_NAME"}
    report = vp.verify(good, world.w3)
    assert checks(report, 3) == {"prov"} and checks(report, 4) == {"prov"}


def test_an_export_verifies_after_a_round_trip_through_the_prov_library(world, good):
    from prov.model import ProvDocument

    text = ProvDocument.deserialize(content=json.dumps(good), format="json").serialize(format="json")
    again = json.loads(text)
    assert act(again, 3)["prov:startTime"].endswith("+00:00")  # what made string comparison fail
    report = vp.verify(again, world.w3)
    assert report.ok and report.count("ok") == len(GOOD_SEQS), report.human()


def test_events_of_both_hash_versions_verify_and_the_version_is_hashed(world, good):
    assert {act(good, s)["miliao:hashVersion"] for s in GOOD_SEQS} == {2}
    legacy = link(None, event_type="dataset.registered", actor="steward:3", subject="catalog.dataset:1",
                  payload={"scale": 0.1, "rows": 3.0}, recorded_at="2024-05-01T08:00:01.123456Z", version=1)
    assert legacy.payload == '{"rows":3.0,"scale":0.1}'
    act(good, 1).update({"miliao:hash": legacy.hash, "miliao:payload": legacy.payload, "miliao:hashVersion": 1})
    report = vp.verify(good, world.w3)
    assert "hash" not in checks(report, 1)  # its content verifies under version 1 (its proof is another matter)
    act(good, 1)["miliao:hashVersion"] = 2
    assert "hash" in checks(vp.verify(good, world.w3), 1)
    act(good, 1)["miliao:hashVersion"] = 3
    assert any("knows versions 1 and 2" in p.message for p in vp.verify(good, world.w3).event(1).problems)


def test_duplicate_and_misnamed_events(world, good):
    good["activity"]["miliao:event/9999"] = copy.deepcopy(act(good, 2))
    report = vp.verify(good, world.w3)
    (copied,) = [e for e in report.events if e.id == "miliao:event/9999"]
    messages = " ".join(p.message for p in copied.problems)
    assert "named miliao:event/9999 but miliao:seq is 2" in messages and "also claims seq 2" in messages
    (original,) = [e for e in report.events if e.id == "miliao:event/2"]
    assert {p.check for p in original.problems} == {"malformed"}
    assert report.exit_code == 1


@pytest.mark.parametrize("doc, message", [
    ([], "not a PROV-JSON document"),
    ({"entity": {}}, "no \"activity\" object"),
    ({"activity": {"ex:thing": {}}}, "not a miliao lineage export"),
])
def test_verify_refuses_what_is_not_an_export(world, doc, message):
    with pytest.raises(vp.UnusableInput, match=message):
        vp.verify(doc, world.w3)


def test_node_that_stops_answering_is_unusable_input(world, good):
    dead = Web3(Web3.HTTPProvider("http://127.0.0.1:1", request_kwargs={"timeout": 5}))
    with pytest.raises(vp.ChainUnreachable, match="stopped answering"):
        vp.verify(good, dead)


# ---- the command line ------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "is not JSON"),
    ('["a list"]', "not a PROV-JSON document"),
    ('{"activity": {}}', "not a miliao lineage export"),
])
def test_main_refuses_a_malformed_file_with_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "export.json"
    if content is not None:
        path.write_text(content)
    assert vp.main([str(path), "--rpc", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("verify_prov: error:") and message in err


def test_main_refuses_an_unusable_rpc_url_with_exit_2(tmp_path, capsys, world):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(world.export([1, 2])))
    assert vp.main([str(path), "--rpc", "ftp://example.org"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    assert vp.main([str(path), "--rpc", "http://127.0.0.1:1", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "no JSON-RPC node answers at http://127.0.0.1:1" in err
    assert json.loads(out)["exit_code"] == 2
    assert vp.main([str(path), "--rpc", "http://127.0.0.1:1", "--registry", "0x1234"]) == 2
    assert "not an Ethereum address" in capsys.readouterr().err


def run_cli(tmp_path, *args):
    """The script copied out of the repository and run alone, as an auditor would."""
    alone = tmp_path / "auditor"
    alone.mkdir(exist_ok=True)
    shutil.copy(SCRIPT, alone / "verify_prov.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "verify_prov.py", *map(str, args)], cwd=alone, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_against_a_json_rpc_node(tmp_path, world, anvil_url):
    rpc_url, w3, here = anvil_url, world.w3, world
    path = tmp_path / "export.json"
    path.write_text(json.dumps(here.export(GOOD_SEQS + [306]), ensure_ascii=False, indent=1))

    done = run_cli(tmp_path, path, "--rpc", rpc_url)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"against chain {w3.eth.chain_id}" in lines[0]
    assert sum(" OK" in line for line in lines) == len(GOOD_SEQS)
    assert any(line.startswith("seq      306") and "NOT ANCHORED" in line for line in lines)
    assert "15 verified, 0 failed, 1 not anchored yet; 2 of 2 roots found" in done.stdout
    assert lines[-1] == "RESULT: NOT VERIFIED"

    path.write_text(json.dumps(here.export(GOOD_SEQS)))
    done = run_cli(tmp_path, path, "--rpc", rpc_url, "--registry", here.registry.address)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "RESULT: VERIFIED"

    doc = here.export(GOOD_SEQS + [307], batches=here.anchored + [here.loose])
    act(doc, 2)["miliao:payload"] = act(doc, 2)["miliao:payload"].replace("EPSG:4490", "EPSG:4326")
    path.write_text(json.dumps(doc))
    done = run_cli(tmp_path, path, "--rpc", rpc_url, "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False and data["summary"]["failed"] == 2
    bad = {e["seq"]: [p["check"] for p in e["problems"]] for e in data["events"] if e["status"] != "ok"}
    assert bad == {2: ["hash"], 307: ["root_not_on_chain"]}  # a JSON-RPC node's revert, decoded

    path.write_text("{}")
    done = run_cli(tmp_path, path, "--rpc", rpc_url)
    assert done.returncode == 2 and "not a PROV-JSON document" in done.stderr
