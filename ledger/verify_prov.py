#!/usr/bin/env python3
"""Verify a miliao lineage export (W3C PROV-JSON) against the blockchain.

    python verify_prov.py EXPORT.json --rpc URL [--registry 0xADDR] [--json]

This file is meant to be copied out of the platform's repository and run by an
outside auditor. It needs only the Python standard library (3.11+), web3.py and rfc8785,
and it re-implements, from the published specification, everything it checks;
it trusts nothing the platform says about itself except what the chain holds.

What is checked, for every event (PROV activity ``miliao:event/<seq>``):

1. **Content.** The event hash is the lowercase hex SHA-256 of the UTF-8 bytes
   of the canonical JSON of the envelope ``{"v", "seq", "prev", "type",
   "actor", "subject", "payload", "at"}`` (``v`` is ``miliao:hashVersion``;
   ``payload`` parsed from the exported ``miliao:payload`` text so it nests as
   JSON). Version 2 writes it as RFC 8785 (JCS, numbers read and written as
   IEEE doubles the ECMAScript way); version 1, events from before JCS, as
   Python's ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
   ensure_ascii=False, allow_nan=False)``. It must equal ``miliao:hash``.
2. **Hash chain.** Where the export holds events n and n+1, event n+1's
   ``miliao:prevHash`` must be event n's ``miliao:hash``; event 1's must be 64 zeros.
3. **Merkle inclusion** (RFC 6962 / RFC 9162). leaf = SHA-256(0x00 || hash bytes),
   node = SHA-256(0x01 || left || right); the audit path, lowest sibling first,
   is folded by the algorithm of RFC 9162 section 2.1.3.2 with ``miliao:leafIndex``
   and ``miliao:treeSize`` and must give ``miliao:root``. The leaf index and tree
   size must agree with the event's seq and the anchored range.
4. **On chain.** The registry contract's ``anchorOfRoot(root)`` (one eth_call per
   distinct root) must find the root, for the same first/last seq; the node's
   chain id must be ``miliao:chainId``; the registry must be the one named on the
   command line, if one was. The anchoring transaction's receipt is looked up
   too; a missing receipt or a different block is only a warning (a reorg makes
   the platform re-anchor the same root in a later transaction).
5. Events exported without an anchor proof are reported as *not anchored yet*.

The PROV relations (``used``, ``wasDerivedFrom``, ``wasGeneratedBy``,
``wasAssociatedWith``) and the ``prov:`` copies of event fields are not covered
by any hash, so they are checked against the hashed fields they repeat: an edge
must be backed by the ``inputs`` list of the event's hashed payload, an
activity's ``prov:startTime``/``prov:endTime`` must be the same instant as its
hashed ``miliao:recordedAt`` (however a PROV tool rewrote the time zone), and its
``prov:type`` the qualified name ``miliao:<event type>``.

Exit status: 0 when everything verifies, 1 when anything does not (including
events not anchored yet), 2 when the input cannot be used at all (unreadable
file, not a PROV-JSON lineage export, no JSON-RPC node at the URL).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field

import rfc8785
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ProviderConnectionError,
    TransactionNotFound,
)

__all__ = [
    "ChainUnreachable",
    "EventResult",
    "Problem",
    "Report",
    "UnusableInput",
    "event_hash",
    "leaf_hash",
    "load_export",
    "main",
    "root_from_path",
    "verify",
]

HASH_VERSIONS = (1, 2)
GENESIS_HASH = "0" * 64
INPUTS_KEY = "inputs"
EVENT_PREFIX = "miliao:event/"

# The two registry functions this verifier needs, copied from ProvenanceRegistry's ABI.
_ANCHOR_TUPLE = {
    "components": [
        {"internalType": "bytes32", "name": "root", "type": "bytes32"},
        {"internalType": "bytes32", "name": "prevRoot", "type": "bytes32"},
        {"internalType": "uint64", "name": "firstSeq", "type": "uint64"},
        {"internalType": "uint64", "name": "lastSeq", "type": "uint64"},
        {"internalType": "uint64", "name": "blockNumber", "type": "uint64"},
        {"internalType": "uint64", "name": "timestamp", "type": "uint64"},
        {"internalType": "address", "name": "writer", "type": "address"},
    ],
    "internalType": "struct ProvenanceRegistry.Anchor",
    "name": "",
    "type": "tuple",
}
REGISTRY_ABI = [
    {
        "type": "function",
        "name": "anchorOfRoot",
        "stateMutability": "view",
        "inputs": [{"internalType": "bytes32", "name": "root", "type": "bytes32"}],
        "outputs": [{"internalType": "uint256", "name": "index", "type": "uint256"}, _ANCHOR_TUPLE],
    },
    {
        "type": "function",
        "name": "isAnchored",
        "stateMutability": "view",
        "inputs": [{"internalType": "bytes32", "name": "root", "type": "bytes32"}],
        "outputs": [{"internalType": "bool", "name": "", "type": "bool"}],
    },
    {
        "type": "error",
        "name": "RootNotAnchored",
        "inputs": [{"internalType": "bytes32", "name": "root", "type": "bytes32"}],
    },
]
ROOT_NOT_ANCHORED = bytes(Web3.keccak(text="RootNotAnchored(bytes32)")[:4])

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ANY_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")

ANCHOR_FIELDS = (
    "miliao:leafIndex",
    "miliao:treeSize",
    "miliao:merklePath",
    "miliao:root",
    "miliao:anchorFirstSeq",
    "miliao:anchorLastSeq",
    "miliao:txHash",
    "miliao:blockNumber",
    "miliao:chainId",
    "miliao:registry",
)
_REQUIRED_ANCHOR_FIELDS = ANCHOR_FIELDS[:6] + ("miliao:chainId",)


class UnusableInput(Exception):
    """The input cannot be verified at all: exit status 2."""


class ChainUnreachable(UnusableInput):
    """The JSON-RPC node did not answer."""


# ---- the specification, re-implemented ---------------------------------------------


_SAFE_INT = 2**53 - 1


def canonical_json(obj: object, version: int = 2) -> bytes:
    if version == 1:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    return rfc8785.dumps(obj)


def _double_int(text: str):
    """An integer literal read as JSON.parse reads it: beyond 2**53, the nearest double."""
    value = int(text)
    return value if -_SAFE_INT <= value <= _SAFE_INT else float(text)


def parse_payload(text: str, version: int = 2):
    return json.loads(text) if version == 1 else json.loads(text, parse_int=_double_int)


def event_hash(
    *, seq: int, prev_hash: str, event_type: str, actor: str, subject: str, payload: str, recorded_at: str,
    version: int = 2,
) -> str:
    """The event hash of the specification; ``payload`` is the exported payload text.

    Raises ValueError when the payload text is not JSON (or holds NaN/Infinity), or
    the version is unknown.
    """
    if version not in HASH_VERSIONS:
        raise ValueError(f"hash version {version!r} is unknown")
    # ledger.chain.event_hash again, on purpose: this file is copied out and trusts no platform code.
    envelope = {
        "v": version,
        "seq": seq,
        "prev": prev_hash,
        "type": event_type,
        "actor": actor,
        "subject": subject,
        "payload": parse_payload(payload, version),
        "at": recorded_at,
    }
    return hashlib.sha256(canonical_json(envelope, version)).hexdigest()


def leaf_hash(event_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(event_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, leaf_index: int, tree_size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root the audit path leads to, or None when it cannot fit.

    ``path`` is the siblings from the leaf upwards. A path that is too short or
    too long for ``leaf_index`` in a tree of ``tree_size`` is refused.
    """
    if not 0 <= leaf_index < tree_size:
        return None
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return None  # more siblings than the tree has levels
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# ---- the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    check: str  # malformed | hash | chain_link | merkle | anchor_range | registry | chain_id |
    #             root_not_on_chain | anchor_mismatch | no_contract | rpc | prov | not_anchored
    message: str


@dataclass
class EventResult:
    seq: int | None
    id: str
    type: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    root: str | None = None

    @property
    def status(self) -> str:
        """ok, not_anchored (nothing else wrong), or fail."""
        if not self.problems:
            return "ok"
        if all(p.check == "not_anchored" for p in self.problems):
            return "not_anchored"
        return "fail"

    def fail(self, check: str, message: str) -> None:
        self.problems.append(Problem(check, message))

    def to_dict(self) -> dict:
        return {
            "seq": self.seq,
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "root": self.root,
            "problems": [p.__dict__ for p in self.problems],
            "warnings": list(self.warnings),
        }


@dataclass
class Report:
    events: list[EventResult] = field(default_factory=list)
    chain_id: int | None = None
    registry: str | None = None  # the one given on the command line, if any
    roots: dict[str, dict] = field(default_factory=dict)  # root -> what the chain said
    problems: list[Problem] = field(default_factory=list)  # about the document, not one event
    warnings: list[str] = field(default_factory=list)

    def event(self, seq: int) -> EventResult:
        return next(e for e in self.events if e.seq == seq)

    def count(self, status: str) -> int:
        return sum(1 for e in self.events if e.status == status)

    @property
    def ok(self) -> bool:
        return not self.problems and all(e.status == "ok" for e in self.events)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "summary": {
                "events": len(self.events),
                "verified": self.count("ok"),
                "failed": self.count("fail"),
                "not_anchored": self.count("not_anchored"),
                "warnings": len(self.warnings) + sum(len(e.warnings) for e in self.events),
                "roots": len(self.roots),
                "roots_on_chain": sum(1 for r in self.roots.values() if r.get("on_chain")),
            },
            "events": [e.to_dict() for e in self.events],
            "roots": [{"root": root, **info} for root, info in self.roots.items()],
            "problems": [p.__dict__ for p in self.problems],
            "warnings": list(self.warnings),
        }

    def human(self) -> str:
        lines = []
        width = max([len(e.type) for e in self.events] + [4])
        for e in self.events:
            seq = "?" if e.seq is None else str(e.seq)
            label = {"ok": "OK", "fail": "FAIL", "not_anchored": "NOT ANCHORED"}[e.status]
            why = "; ".join(p.message for p in e.problems)
            lines.append(f"seq {seq:>8}  {e.type:<{width}}  {label}" + (f"  {why}" if why else ""))
            for w in e.warnings:
                lines.append(f"{'':>12}  {'':<{width}}  warning: {w}")
        for p in self.problems:
            lines.append(f"export: FAIL  {p.message}")
        for w in self.warnings:
            lines.append(f"export: warning: {w}")
        d = self.to_dict()["summary"]
        chain = f"chain {self.chain_id}" if self.chain_id is not None else "the chain"
        lines.append(
            f"{d['events']} events: {d['verified']} verified, {d['failed']} failed, "
            f"{d['not_anchored']} not anchored yet; {d['roots_on_chain']} of {d['roots']} roots found on {chain}"
            + (f"; {d['warnings']} warnings" if d["warnings"] else "")
        )
        lines.append("RESULT: " + ("VERIFIED" if self.ok else "NOT VERIFIED"))
        return "\n".join(lines)


# ---- reading the export -------------------------------------------------------------


def load_export(path: str) -> dict:
    """Read and parse the export file; UnusableInput says why it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UnusableInput(f"{path} is not UTF-8 text: {exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UnusableInput(f"{path} is not JSON: {exc}") from exc
    _check_document(doc, path)
    return doc


def _check_document(doc: object, where: str = "the export") -> None:
    if not isinstance(doc, dict):
        raise UnusableInput(f"{where} is not a PROV-JSON document: the top level is a {type(doc).__name__}, not an object")
    activities = doc.get("activity")
    if not isinstance(activities, dict):
        raise UnusableInput(f"{where} is not a PROV-JSON document: it has no \"activity\" object")
    if not any(isinstance(k, str) and k.startswith(EVENT_PREFIX) for k in activities):
        raise UnusableInput(f"{where} is not a miliao lineage export: no activity is named {EVENT_PREFIX}<seq>")
    for section in ("entity", "agent", "wasGeneratedBy", "used", "wasDerivedFrom", "wasAssociatedWith"):
        if section in doc and not isinstance(doc[section], dict):
            raise UnusableInput(f"{where} is not a PROV-JSON document: \"{section}\" is not an object")


def _value(raw):
    """A PROV-JSON attribute value: plain, or a typed literal {"$": value, "type": ...}."""
    if isinstance(raw, dict) and "$" in raw:
        value, typ = raw["$"], str(raw.get("type", ""))
        if isinstance(value, str) and typ.split(":")[-1] in ("int", "integer", "long", "unsignedLong"):
            try:
                return int(value)
            except ValueError:
                return value
        return value
    return raw


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class _Event:
    result: EventResult
    attrs: dict
    seq: int | None = None
    hash: str | None = None
    content_ok: bool = False
    version: object = 1


def _read_event(act_id: str, raw: object) -> _Event:
    attrs = {k: _value(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    seq = attrs.get("miliao:seq")
    etype = attrs.get("miliao:eventType")
    result = EventResult(seq=seq if _is_int(seq) else None, id=act_id, type=etype if isinstance(etype, str) else "?")
    ev = _Event(result, attrs, seq=result.seq)
    if not isinstance(raw, dict):
        result.fail("malformed", f"{act_id} is not an object")
        return ev
    if ev.seq is None:
        result.fail("malformed", "miliao:seq is missing or not an integer")
    elif act_id != f"{EVENT_PREFIX}{ev.seq}":
        result.fail("malformed", f"the activity is named {act_id} but miliao:seq is {ev.seq}")
    missing = []
    for key in ("miliao:prevHash", "miliao:hash"):
        v = attrs.get(key)
        if not isinstance(v, str) or not _HEX64.match(v):
            missing.append(f"{key} (64 lowercase hex digits)")
    for key in ("miliao:eventType", "miliao:actor", "miliao:subject", "miliao:payload", "miliao:recordedAt"):
        if not isinstance(attrs.get(key), str):
            missing.append(f"{key} (a string)")
    if missing:
        result.fail("malformed", "missing or invalid " + ", ".join(missing))
    if "miliao:hash" in attrs and isinstance(attrs["miliao:hash"], str) and _HEX64.match(attrs["miliao:hash"]):
        ev.hash = attrs["miliao:hash"]
    ev.version = attrs.get("miliao:hashVersion", 1)  # exports from before versions were named are 1
    if ev.version not in HASH_VERSIONS or not _is_int(ev.version):
        result.fail("malformed", f"miliao:hashVersion is {ev.version!r}; this verifier knows versions "
                                 + " and ".join(map(str, HASH_VERSIONS)))
    return ev


# ---- verification -------------------------------------------------------------------


def verify(doc: dict, web3: Web3, registry: str | None = None) -> Report:
    """Check every event of a parsed export; see the module docstring for what is checked.

    Raises UnusableInput when ``doc`` is not a lineage export and ChainUnreachable
    when the node stops answering; every other finding goes into the Report.
    """
    _check_document(doc)
    if registry is not None and not Web3.is_address(registry):
        raise UnusableInput(f"--registry {registry!r} is not an Ethereum address")
    report = Report(registry=Web3.to_checksum_address(registry) if registry else None)
    events: list[_Event] = []
    for act_id, raw in doc["activity"].items():
        if isinstance(act_id, str) and act_id.startswith(EVENT_PREFIX):
            events.append(_read_event(act_id, raw))
        else:
            report.warnings.append(f"activity {act_id} is not a ledger event and was not verified")
    events.sort(key=lambda e: (e.seq is None, e.seq or 0, e.result.id))
    report.events = [e.result for e in events]

    by_seq: dict[int, _Event] = {}
    for ev in events:
        if ev.seq is None:
            continue
        if ev.seq in by_seq:
            ev.result.fail("malformed", f"another activity also claims seq {ev.seq}")
            by_seq[ev.seq].result.fail("malformed", f"another activity also claims seq {ev.seq}")
        else:
            by_seq[ev.seq] = ev

    for ev in events:
        if not ev.result.problems:
            _check_content(ev)
    _check_links(by_seq)
    _check_prov(doc, events, by_seq, report)
    chain = _Chain(web3, report)
    for ev in events:
        _check_anchor(ev, chain, report)
    return report


def _check_content(ev: _Event) -> None:
    a = ev.attrs
    try:
        computed = event_hash(
            seq=ev.seq,
            prev_hash=a["miliao:prevHash"],
            event_type=a["miliao:eventType"],
            actor=a["miliao:actor"],
            subject=a["miliao:subject"],
            payload=a["miliao:payload"],
            recorded_at=a["miliao:recordedAt"],
            version=ev.version,
        )
    except ValueError as exc:  # JSONDecodeError is a ValueError; so is NaN refused by allow_nan=False
        ev.result.fail("hash", f"miliao:payload is not valid JSON ({exc}), so the event hash cannot be recomputed")
        return
    if computed != ev.hash:
        ev.result.fail(
            "hash",
            f"event hash mismatch: the exported content of seq {ev.seq} hashes to {computed[:16]}…, "
            f"but miliao:hash is {ev.hash[:16]}… (the event was edited)",
        )
    else:
        ev.content_ok = True


def _check_links(by_seq: dict[int, _Event]) -> None:
    for seq, ev in by_seq.items():
        prev_hash = ev.attrs.get("miliao:prevHash")
        if not isinstance(prev_hash, str):
            continue
        if seq == 1 and prev_hash != GENESIS_HASH:
            ev.result.fail("chain_link", "event 1 must have the genesis prevHash (64 zeros)")
        before = by_seq.get(seq - 1)
        if before is not None and before.hash is not None and prev_hash != before.hash:
            ev.result.fail(
                "chain_link",
                f"chain broken: prevHash {prev_hash[:16]}… of seq {seq} is not the hash "
                f"{before.hash[:16]}… of seq {seq - 1}",
            )


def _qn(subject: str) -> str:
    return "miliao:" + subject.replace(":", "/")


def _instant(value) -> datetime.datetime | None:
    """An xsd:dateTime with its time zone as an instant; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _expand(doc: dict, name) -> str | None:
    """A qualified name (plain, or typed prov:QUALIFIED_NAME) as the IRI it stands for."""
    if isinstance(name, dict):
        # prov:QUALIFIED_NAME, or xsd:QName as the prov package writes it.
        if str(name.get("type", "")).split(":")[-1] not in ("QUALIFIED_NAME", "QName"):
            return None
        name = name.get("$")
    if not isinstance(name, str) or ":" not in name:
        return None
    prefix, _, local = name.partition(":")
    namespace = (doc.get("prefix") or {}).get(prefix)
    return namespace + local if isinstance(namespace, str) else None


def _check_prov(doc: dict, events: list[_Event], by_seq: dict[int, _Event], report: Report) -> None:
    """The unhashed parts of the export must agree with the hashed fields they repeat."""
    raw_types = {act_id: raw["prov:type"] for act_id, raw in doc["activity"].items()
                 if isinstance(raw, dict) and "prov:type" in raw}
    for ev in events:
        a = ev.attrs
        if not ev.content_ok:
            continue
        recorded = _instant(a["miliao:recordedAt"])
        for key in ("prov:startTime", "prov:endTime"):
            if key in a and (recorded is None or _instant(a[key]) != recorded):
                ev.result.fail("prov", f"{key} {a[key]!r} is not the instant of the hashed recordedAt "
                                       f"{a['miliao:recordedAt']!r}")
        raw_type = raw_types.get(ev.result.id)
        if raw_type is not None:
            wanted = _expand(doc, f"miliao:{a['miliao:eventType']}")
            if wanted is None or _expand(doc, raw_type) != wanted:
                ev.result.fail("prov", f"prov:type {raw_type!r} is not the qualified name of the hashed event type")
    by_id = {ev.result.id: ev for ev in events}

    def relations(section: str):
        for rel_id, rel in (doc.get(section) or {}).items():
            if not isinstance(rel, dict):
                report.problems.append(Problem("prov", f"{section} {rel_id} is not an object"))
                continue
            act = _value(rel.get("prov:activity"))
            if not isinstance(act, str) or not act.startswith(EVENT_PREFIX):
                continue  # not about a ledger event: nothing to check it against
            ev = by_id.get(act)
            if ev is None:
                report.problems.append(
                    Problem("prov", f"{section} {rel_id} names {act}, which is not in the export, so it is unverified")
                )
                continue
            if ev.content_ok:
                yield rel_id, rel, ev

    def payload_inputs(ev: _Event) -> set[str]:
        payload = json.loads(ev.attrs["miliao:payload"])
        inputs = payload.get(INPUTS_KEY, []) if isinstance(payload, dict) else []
        return {i for i in inputs if isinstance(i, str)} if isinstance(inputs, list) else set()

    for rel_id, rel, ev in relations("wasGeneratedBy"):
        if _value(rel.get("prov:entity")) != _qn(ev.attrs["miliao:subject"]):
            ev.result.fail("prov", f"wasGeneratedBy {rel_id} names {rel.get('prov:entity')}, not the event's subject")
    for rel_id, rel, ev in relations("wasAssociatedWith"):
        if _value(rel.get("prov:agent")) != "miliao:agent/" + ev.attrs["miliao:actor"]:
            ev.result.fail("prov", f"wasAssociatedWith {rel_id} names {rel.get('prov:agent')}, not the event's actor")
    for rel_id, rel, ev in relations("used"):
        used = _value(rel.get("prov:entity"))
        if used not in {_qn(s) for s in payload_inputs(ev)}:
            ev.result.fail("prov", f"used {rel_id}: {used} is not among the inputs the event's hashed payload lists")
    for rel_id, rel, ev in relations("wasDerivedFrom"):
        used = _value(rel.get("prov:usedEntity"))
        made = _value(rel.get("prov:generatedEntity"))
        if used not in {_qn(s) for s in payload_inputs(ev)}:
            ev.result.fail(
                "prov", f"wasDerivedFrom {rel_id}: {used} is not among the inputs the event's hashed payload lists"
            )
        if made != _qn(ev.attrs["miliao:subject"]):
            ev.result.fail("prov", f"wasDerivedFrom {rel_id}: {made} is not the event's subject")


class _Chain:
    """The node, asked each thing once."""

    def __init__(self, web3: Web3, report: Report):
        self.web3 = web3
        self.report = report
        self._chain_id: int | None = None
        self._code: dict[str, bool] = {}
        self._anchors: dict[tuple[str, str], dict] = {}
        self._receipts: dict[str, object] = {}

    def _ask(self, what: str, fn):
        try:
            return fn()
        except (OSError, ProviderConnectionError, TimeoutError) as exc:
            raise ChainUnreachable(f"the JSON-RPC node stopped answering while reading {what}: {exc}") from exc

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._ask("the chain id", lambda: self.web3.eth.chain_id)
            self.report.chain_id = self._chain_id
        return self._chain_id

    def has_code(self, address: str) -> bool:
        if address not in self._code:
            code = self._ask(f"the code at {address}", lambda: self.web3.eth.get_code(address))
            self._code[address] = bool(code)
        return self._code[address]

    def anchor(self, address: str, root: str) -> dict:
        """{"on_chain": bool, ...the anchor's fields} or {"error": str}; one eth_call per root."""
        key = (address, root)
        if key not in self._anchors:
            self._anchors[key] = info = self._read_anchor(address, root)
            self.report.roots[root] = {"registry": address, **info}
        return self._anchors[key]

    def _read_anchor(self, address: str, root: str) -> dict:
        contract = self.web3.eth.contract(address=address, abi=REGISTRY_ABI)
        raw = bytes.fromhex(root)
        try:
            index, fields = self._ask(f"root {root}", lambda: contract.functions.anchorOfRoot(raw).call())
        except ChainUnreachable:
            raise
        except BadFunctionCallOutput as exc:
            return {"on_chain": False, "error": f"the registry gave an unreadable answer: {exc}"}
        except Exception as exc:  # a revert: web3's ContractCustomError/ContractLogicError
            data = _revert_data(exc)
            if data is not None and data[:4] == ROOT_NOT_ANCHORED:
                return {"on_chain": False}
            # Undecodable revert: ask the simpler question before calling it an error.
            try:
                anchored = self._ask(f"root {root}", lambda: contract.functions.isAnchored(raw).call())
            except ChainUnreachable:
                raise
            except Exception:
                anchored = None
            if anchored is False:
                return {"on_chain": False}
            return {"on_chain": False, "error": f"anchorOfRoot failed: {exc}"}
        root_b, prev_root, first_seq, last_seq, block_number, timestamp, writer = fields
        return {
            "on_chain": True,
            "index": index,
            "prev_root": bytes(prev_root).hex(),
            "first_seq": first_seq,
            "last_seq": last_seq,
            "block_number": block_number,
            "timestamp": timestamp,
            "writer": writer,
        }

    def receipt(self, tx_hash: str):
        if tx_hash not in self._receipts:
            def get():
                try:
                    return self.web3.eth.get_transaction_receipt(tx_hash)
                except TransactionNotFound:
                    return None
            try:
                self._receipts[tx_hash] = self._ask(f"the receipt of {tx_hash}", get)
            except ChainUnreachable:
                raise
            except Exception as exc:  # e.g. a malformed hash the node refuses
                self._receipts[tx_hash] = exc
        return self._receipts[tx_hash]


def _revert_data(exc: BaseException) -> bytes | None:
    """The revert bytes carried by an eth_call failure, whatever the provider wrapped them in."""
    seen = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray)):
            return bytes(item)
        if isinstance(item, str):
            text = item.strip()
            if re.fullmatch(r"0x([0-9a-fA-F]{2})+", text):
                return bytes.fromhex(text[2:])
            continue
        if isinstance(item, dict):
            todo.extend(item.values())
            continue
        if isinstance(item, BaseException):
            data = getattr(item, "data", None)
            todo.extend(reversed([*item.args, data, item.__cause__, item.__context__]))
            todo = [t for t in todo if t is not None]
    return None


def _check_anchor(ev: _Event, chain: _Chain, report: Report) -> None:
    a, r = ev.attrs, ev.result
    if a.get("miliao:anchorStatus") == "proof_unavailable":
        r.fail(
            "merkle",
            "the platform could not build a proof: its stored batch no longer hashes to the anchored root "
            f"{str(a.get('miliao:root', '?'))[:16]}…",
        )
        return
    present = [k for k in ANCHOR_FIELDS if k in a]
    if not present:
        r.fail("not_anchored", "not anchored yet: the export carries no anchor proof for this event")
        return
    missing = [k for k in _REQUIRED_ANCHOR_FIELDS if k not in a]
    if missing:
        r.fail("malformed", "incomplete anchor proof: missing " + ", ".join(missing))
        return
    idx, size, first, last = (a[k] for k in ("miliao:leafIndex", "miliao:treeSize", "miliao:anchorFirstSeq", "miliao:anchorLastSeq"))
    path, root, chain_id = a["miliao:merklePath"], a["miliao:root"], a["miliao:chainId"]
    bad = [k for k, v in (("miliao:leafIndex", idx), ("miliao:treeSize", size), ("miliao:anchorFirstSeq", first),
                          ("miliao:anchorLastSeq", last), ("miliao:chainId", chain_id)) if not _is_int(v)]
    if not isinstance(root, str) or not _ANY_HEX64.match(root):
        bad.append("miliao:root (64 hex digits)")
    if isinstance(path, str):
        # The platform writes the path as one comma-separated string, because PROV-JSON
        # reads a list value as an unordered set of values; a lone hash is the same.
        path = [p for p in path.split(",") if p]
    if not isinstance(path, list) or not all(isinstance(p, str) and _ANY_HEX64.match(p) for p in path):
        bad.append("miliao:merklePath (a list of 64-hex-digit hashes)")
    if bad:
        r.fail("malformed", "invalid anchor proof: " + ", ".join(bad))
        return
    root = root.lower().removeprefix("0x")
    r.root = root

    # 3. Merkle inclusion of the exported hash, at the position the anchored range gives it.
    if ev.seq is not None and ev.hash is not None:
        if not first <= ev.seq <= last:
            r.fail("anchor_range", f"seq {ev.seq} is outside the anchored range {first}–{last}")
        else:
            if idx != ev.seq - first:
                r.fail("anchor_range", f"leafIndex {idx} is not seq − anchorFirstSeq = {ev.seq - first}")
            if size != last - first + 1:
                r.fail("anchor_range", f"treeSize {size} is not the size {last - first + 1} of the range {first}–{last}")
        siblings = [bytes.fromhex(p.lower().removeprefix("0x")) for p in path]
        computed = root_from_path(leaf_hash(ev.hash), idx, size, siblings)
        if computed is None:
            r.fail("merkle", f"the Merkle path ({len(path)} hashes) does not fit leaf {idx} of a tree of {size}")
        elif computed.hex() != root:
            r.fail("merkle", f"Merkle path mismatch: hash and path lead to {computed.hex()[:16]}…, not the root {root[:16]}…")

    # 4. The root on the chain.
    exported_registry = a.get("miliao:registry")
    if exported_registry is not None and not (isinstance(exported_registry, str) and Web3.is_address(exported_registry)):
        r.fail("malformed", f"miliao:registry {exported_registry!r} is not an address")
        return
    if report.registry and exported_registry and exported_registry.lower() != report.registry.lower():
        r.fail("registry", f"anchored at registry {exported_registry}, not the registry {report.registry} given to check")
        return
    address = report.registry or exported_registry
    if not address:
        r.fail("registry", "no registry address: the export names none and none was given with --registry")
        return
    address = Web3.to_checksum_address(address)
    if chain_id != chain.chain_id:
        r.fail("chain_id", f"the export says chain id {chain_id}, the node is chain {chain.chain_id}")
        return
    if not chain.has_code(address):
        r.fail("no_contract", f"there is no contract at {address} on chain {chain.chain_id}")
        return
    info = chain.anchor(address, root)
    if info.get("error"):
        r.fail("rpc", f"could not read root {root[:16]}… from the registry: {info['error']}")
        return
    if not info["on_chain"]:
        r.fail("root_not_on_chain", f"root not on the chain: {root[:16]}… was never anchored at {address}")
        return
    if (info["first_seq"], info["last_seq"]) != (first, last):
        r.fail(
            "anchor_mismatch",
            f"the chain anchors root {root[:16]}… for events {info['first_seq']}–{info['last_seq']}, "
            f"the export says {first}–{last}",
        )
    block = a.get("miliao:blockNumber")
    if _is_int(block) and block != info["block_number"]:
        r.warnings.append(
            f"root anchored in block {info['block_number']} on the chain, the export says block {block} (re-anchored?)"
        )
    tx_hash = a.get("miliao:txHash")
    if not isinstance(tx_hash, str) or not tx_hash:
        r.warnings.append("the export names no anchoring transaction")
        return
    receipt = chain.receipt(tx_hash)
    if receipt is None:
        r.warnings.append(f"the anchoring transaction {tx_hash} is not known to the node (re-anchored after a reorg?)")
    elif isinstance(receipt, Exception):
        r.warnings.append(f"the anchoring transaction {tx_hash} could not be looked up: {receipt}")
    else:
        if receipt["blockNumber"] != block:
            r.warnings.append(f"the anchoring transaction {tx_hash} is in block {receipt['blockNumber']}, not {block}")
        if receipt.get("status") != 1:
            r.warnings.append(f"the anchoring transaction {tx_hash} failed on the chain")
        to = receipt.get("to")
        if to and to.lower() != address.lower():
            r.warnings.append(f"the anchoring transaction {tx_hash} was sent to {to}, not the registry")


# ---- the command line ---------------------------------------------------------------


def connect(url: str, timeout: float = 30) -> Web3:
    """A web3 connection to the JSON-RPC node at ``url`` (http(s) or an IPC socket path)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise UnusableInput(f"--rpc {url!r} has no host")
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    elif not parsed.scheme and os.path.exists(url):
        w3 = Web3(Web3.IPCProvider(url, timeout=timeout))
    else:
        raise UnusableInput(f"--rpc {url!r} is not an http(s) URL or an IPC socket path")
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:  # connection refused, DNS, TLS, not JSON-RPC at all...
        raise ChainUnreachable(f"no JSON-RPC node answers at {url}: {exc}") from exc
    if not isinstance(chain_id, int):
        raise ChainUnreachable(f"{url} did not answer eth_chainId with a number")
    return w3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify_prov.py",
        description="Verify a miliao lineage export (W3C PROV-JSON): event hashes, the hash chain, "
        "Merkle proofs, and the anchored roots on the chain.",
        epilog="Exit status: 0 verified, 1 something did not verify, 2 unusable input.",
    )
    parser.add_argument("export", help="the PROV-JSON export file")
    parser.add_argument("--rpc", required=True, help="JSON-RPC URL of a node of the chain the export was anchored on")
    parser.add_argument("--registry", help="the registry contract address to trust (default: the one in the export)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)

    def unusable(message: str) -> int:
        if args.json:
            print(json.dumps({"ok": False, "exit_code": 2, "error": message}, indent=2))
        print(f"verify_prov: error: {message}", file=sys.stderr)
        return 2

    try:
        doc = load_export(args.export)
        if args.registry is not None and not Web3.is_address(args.registry):
            raise UnusableInput(f"--registry {args.registry!r} is not an Ethereum address")
        w3 = connect(args.rpc)
        report = verify(doc, w3, registry=args.registry)
    except UnusableInput as exc:
        return unusable(str(exc))
    if args.json:
        print(json.dumps({"file": args.export, "rpc": args.rpc, **report.to_dict()}, indent=2, ensure_ascii=False))
    else:
        print(f"Verifying {args.export} against chain {report.chain_id} at {args.rpc}")
        print(report.human())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
