"""Lineage for auditors: the graph of an artifact, inclusion proofs, verification, PROV export.

An artifact is a subject ("releases.release:7"). Its lineage is every
artifact it was derived from and every artifact derived from it, following
the "inputs" that actions record with their events (LineageLink indexes
them). Verifying it trusts nothing in the database: each event is re-hashed
from its content, checked against its neighbours in the hash chain, and
proved by a Merkle path into a root read from the registry on the chain.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ledger import chain as hashchain
from ledger import merkle
from ledger.registry import ChainUnavailable, RegistryError

from . import chain
from .models import Anchor, AnchorStatus, ChainRegistry, LineageEvent, LineageLink
from .queries import seq_by_hash
from .recorder import INPUTS_KEY

__all__ = [
    "Finding",
    "LineageGraph",
    "UnknownArtifact",
    "inclusion_proof",
    "lineage_graph",
    "prov_document",
    "verify_lineage",
]

MAX_NODES = 400
PROV_NS = "https://miliao.example/ns/prov#"

# The registry's read calls, and the errors they revert with, as an outside verifier calls them.
REGISTRY_READS = ("anchorAt", "anchorCount", "anchorOfRoot", "anchorOfSeq", "isAnchored", "lastRoot", "lastSeq")
REGISTRY_READ_ERRORS = ("IndexOutOfRange", "RootNotAnchored", "SeqNotAnchored")


class UnknownArtifact(LookupError):
    """No event was ever recorded about this subject."""


@dataclass
class LineageGraph:
    subject: str
    nodes: dict[str, list[LineageEvent]]  # subject -> its events, in seq order
    edges: list[tuple[str, str, int]]  # (source, derived subject, seq of the event that derived it)
    truncated: bool = False

    @property
    def events(self) -> list[LineageEvent]:
        return sorted((e for evs in self.nodes.values() for e in evs), key=lambda e: e.seq)

    def depth(self) -> dict[str, int]:
        """Layer of each node for drawing: ancestors negative, the artifact 0, descendants positive."""
        up = defaultdict(list)
        down = defaultdict(list)
        for source, subject, _seq in self.edges:
            up[subject].append(source)
            down[source].append(subject)
        depth = {self.subject: 0}
        for links, step in ((up, -1), (down, 1)):
            frontier = [self.subject]
            while frontier:
                nxt = []
                for node in frontier:
                    for other in links[node]:
                        if other not in depth:
                            depth[other] = depth[node] + step
                            nxt.append(other)
                frontier = nxt
        for node in self.nodes:  # reached only sideways (a sibling's other input)
            depth.setdefault(node, 0)
        return depth


def lineage_graph(subject: str, *, max_nodes: int = MAX_NODES) -> LineageGraph:
    """Everything ``subject`` came from and everything made from it."""
    if not LineageEvent.objects.filter(subject=subject).exists():
        raise UnknownArtifact(f"no event was recorded about {subject!r}")
    seen = {subject}
    edges: set[tuple[str, str, int]] = set()
    truncated = False
    for direction in ("up", "down"):
        frontier = {subject}
        while frontier and not truncated:
            if direction == "up":
                links = LineageLink.objects.filter(subject__in=frontier).values_list("source", "subject", "seq")
            else:
                links = LineageLink.objects.filter(source__in=frontier).values_list("source", "subject", "seq")
            nxt = set()
            for source, derived, seq in links:
                edges.add((source, derived, seq))
                other = source if direction == "up" else derived
                if other not in seen:
                    if len(seen) >= max_nodes:
                        truncated = True
                        break
                    seen.add(other)
                    nxt.add(other)
            frontier = nxt
    nodes: dict[str, list[LineageEvent]] = {s: [] for s in seen}
    for event in LineageEvent.objects.filter(subject__in=seen).order_by("seq"):
        nodes[event.subject].append(event)
    edge_list = sorted(e for e in edges if e[0] in nodes and e[1] in nodes)
    return LineageGraph(subject, nodes, edge_list, truncated)


# ---- proofs ----------------------------------------------------------------------


def _anchor_for(seq: int) -> Anchor | None:
    return (
        Anchor.objects.filter(first_seq__lte=seq, last_seq__gte=seq, status=AnchorStatus.CONFIRMED)
        .select_related("registry")
        .first()
    )


def _pages(anchor: Anchor) -> list[bytes]:
    raw = bytes(anchor.page_roots)
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def _page_hashes(anchor: Anchor, page: int) -> list[tuple[int, str]]:
    lo = anchor.first_seq + page * merkle.PAGE_SIZE
    hi = min(lo + merkle.PAGE_SIZE - 1, anchor.last_seq)
    return list(LineageEvent.objects.filter(seq__gte=lo, seq__lte=hi).order_by("seq").values_list("seq", "hash"))


def _anchor_dict(anchor: Anchor) -> dict:
    return {
        "root": anchor.root,
        "first_seq": anchor.first_seq,
        "last_seq": anchor.last_seq,
        "prev_root": anchor.prev_root,
        "tx_hash": anchor.tx_hash,
        "block_number": anchor.block_number,
        "block_hash": anchor.block_hash,
        "confirmations": anchor.confirmations,
        "chain_id": anchor.registry.chain_id,
        "registry": anchor.registry.address,
    }


def inclusion_proof(seq: int) -> dict | None:
    """The Merkle path from event ``seq`` to its anchored root, with the root's tx and block.

    None while the event is not anchored yet. Raises ValueError when the stored
    batch no longer hashes to its root (the verification names what changed).
    """
    anchor = _anchor_for(seq)
    if anchor is None:
        return None
    leaf_index = seq - anchor.first_seq
    page = leaf_index // merkle.PAGE_SIZE
    rows = _page_hashes(anchor, page)
    proof = merkle.prove(leaf_index, anchor.size, [h for _s, h in rows], _pages(anchor))
    return {"seq": seq, **proof.to_dict(), "anchor": _anchor_dict(anchor)}


# ---- verification ------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    seq: int
    kind: str  # edited | deleted | inserted | reordered | not_on_chain | proof_mismatch | link_mismatch
    message: str


@dataclass
class LineageReport:
    subject: str
    ok: bool = True
    events: int = 0
    anchored: int = 0
    unanchored: list[int] = field(default_factory=list)
    roots: list[dict] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    chain_error: str = ""
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["findings"] = [f.__dict__ for f in self.findings]
        return data


def verify_lineage(subject: str) -> LineageReport:
    """Check every event of ``subject``'s lineage against its content, the chain of hashes and the chain."""
    started = time.perf_counter()
    graph = lineage_graph(subject)
    report = LineageReport(subject=subject)
    events = graph.events
    report.events = len(events)
    findings: dict[tuple[int, str], Finding] = {}

    def add(f: Finding) -> None:
        findings.setdefault((f.seq, f.kind), f)

    # 1. Each event against its content and its neighbours in the hash chain. The window
    # starts two events back, so a swap with the event just before is told from an insert.
    wanted = sorted({s for e in events for s in range(e.seq - 2, e.seq + 2) if s >= 1})
    rows = {e.seq: e.as_record() for e in LineageEvent.objects.filter(seq__in=wanted)}
    recomputed: dict[int, str | None] = {}
    for event in events:
        rec = rows[event.seq]
        try:
            recomputed[event.seq] = rec.computed_hash()
        except ValueError:
            recomputed[event.seq] = None
        if event.seq > 1 and event.seq - 1 not in rows:
            add(Finding(event.seq - 1, "deleted", f"event {event.seq - 1}, just before event {event.seq}, was deleted"))
            continue
        if event.seq <= 2:  # from the genesis
            start, first = None, 1
        elif event.seq - 2 in rows:
            start, first = rows[event.seq - 2], event.seq - 1
        else:  # the one before the neighbour is gone; that is another event's finding
            start, first = rows[event.seq - 1], event.seq
        window = [rows[s] for s in range(first, event.seq + 2) if s in rows]
        result = hashchain.verify_chain(window, start=start, find_seq_by_hash=seq_by_hash)
        if result.tamper is not None:
            t = result.tamper
            add(Finding(t.seq, t.kind, t.message))
    _check_links(events, add)

    # 2. Each anchored event by its Merkle path into the root the registry holds.
    by_anchor: dict[int, list[LineageEvent]] = defaultdict(list)
    anchors = {
        a.pk: a
        for a in Anchor.objects.filter(status=AnchorStatus.CONFIRMED, last_seq__gte=events[0].seq, first_seq__lte=events[-1].seq)
        .select_related("registry")
    }
    spans = sorted(anchors.values(), key=lambda a: a.first_seq)
    for event in events:
        holder = next((a for a in spans if a.first_seq <= event.seq <= a.last_seq), None)
        if holder is None:
            report.unanchored.append(event.seq)
        else:
            by_anchor[holder.pk].append(event)
    if by_anchor:
        try:
            registry = chain.connect().registry
        except (ChainUnavailable, RegistryError) as exc:
            report.chain_error = str(exc)
            registry = None
        if registry is not None:
            for anchor_id, members in by_anchor.items():
                try:
                    _verify_anchor(anchors[anchor_id], members, recomputed, registry, report, add)
                except ChainUnavailable as exc:
                    report.chain_error = str(exc)
                    break
    report.findings = sorted(findings.values(), key=lambda f: (f.seq, f.kind))
    report.ok = not report.findings and not report.chain_error
    report.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return report


def _check_links(events: list[LineageEvent], add) -> None:
    indexed: dict[int, list[str]] = defaultdict(list)
    for seq, source in LineageLink.objects.filter(seq__in=[e.seq for e in events]).values_list("seq", "source"):
        indexed[seq].append(source)
    for event in events:
        try:
            inputs = sorted(json.loads(event.payload).get(INPUTS_KEY, []))
        except (ValueError, AttributeError):
            continue  # an unparseable payload is already reported as edited
        stored = sorted(indexed[event.seq])
        if stored != inputs:
            add(
                Finding(
                    event.seq,
                    "link_mismatch",
                    f"the lineage index of event {event.seq} says {stored} but the event records inputs {inputs}",
                )
            )


def _verify_anchor(anchor: Anchor, members, recomputed, registry, report: LineageReport, add) -> None:
    on_chain = registry.anchor_of_seq(anchor.first_seq)
    root_info = {**_anchor_dict(anchor), "on_chain": False}
    report.roots.append(root_info)
    if on_chain is None or on_chain.root != anchor.root or (on_chain.first_seq, on_chain.last_seq) != (
        anchor.first_seq,
        anchor.last_seq,
    ):
        found = "nothing" if on_chain is None else f"root {on_chain.root[:16]}… for {on_chain.first_seq}–{on_chain.last_seq}"
        for event in members:
            add(
                Finding(
                    event.seq,
                    "not_on_chain",
                    f"event {event.seq} is recorded as anchored under root {anchor.root[:16]}… "
                    f"(events {anchor.first_seq}–{anchor.last_seq}), but the registry holds {found} there",
                )
            )
        return
    root_info["on_chain"] = True
    root_info["on_chain_block"] = on_chain.block_number
    pages = _pages(anchor)
    tree_size = on_chain.last_seq - on_chain.first_seq + 1
    if len(pages) != -(-tree_size // merkle.PAGE_SIZE):
        for event in members:
            add(Finding(event.seq, "proof_mismatch", f"the stored page roots of events {anchor.first_seq}–{anchor.last_seq} were changed"))
        return
    by_page: dict[int, list[LineageEvent]] = defaultdict(list)
    for event in members:
        by_page[(event.seq - on_chain.first_seq) // merkle.PAGE_SIZE].append(event)
    spans = {
        page: range(on_chain.first_seq + page * merkle.PAGE_SIZE,
                    min(on_chain.first_seq + (page + 1) * merkle.PAGE_SIZE - 1, on_chain.last_seq) + 1)
        for page in by_page
    }
    ranges = Q()
    for span in spans.values():
        ranges |= Q(seq__gte=span.start, seq__lte=span.stop - 1)
    stored = dict(LineageEvent.objects.filter(ranges).values_list("seq", "hash"))
    for page, page_events in by_page.items():
        span = spans[page]
        missing = [s for s in span if s not in stored]
        if missing:
            for seq in missing[:5]:
                add(Finding(seq, "deleted", f"event {seq} was deleted from an anchored batch"))
            continue
        # Siblings come from the stored hashes; the event itself is re-hashed from its
        # content, and a path never contains the node it starts from, so one page's
        # leaves and one upper path serve every event on the page.
        leaves = [merkle.leaf_hash(stored[s]) for s in span]
        upper = merkle.audit_path(page, pages)
        for event in page_events:
            own = recomputed.get(event.seq)
            path = merkle.audit_path(event.seq - span.start, leaves) + upper
            proof = merkle.InclusionProof(
                leaf_index=event.seq - on_chain.first_seq,
                tree_size=tree_size,
                path=tuple(p.hex() for p in path),
                root=on_chain.root,
            )
            if own is not None and proof.verify(own):
                report.anchored += 1
            else:
                add(
                    Finding(
                        event.seq,
                        "proof_mismatch",
                        f"event {event.seq} ({event.event_type}) no longer leads to the root anchored on the chain "
                        f"in block {on_chain.block_number}: it or its batch was changed after anchoring",
                    )
                )


# ---- W3C PROV-JSON -----------------------------------------------------------------


def _qn(subject: str) -> str:
    return "miliao:" + subject.replace(":", "/")


def _qualified(name: str) -> dict:
    """A PROV-JSON qualified-name value (a plain string would be a string literal)."""
    return {"$": name, "type": "prov:QUALIFIED_NAME"}


def registry_read_abi() -> list[dict]:
    """The ABI fragment of the registry's read calls (view functions) and their errors."""
    from ledger.contracts import registry_abi

    return [
        item for item in registry_abi()
        if (item.get("type") == "function" and item.get("name") in REGISTRY_READS)
        or (item.get("type") == "error" and item.get("name") in REGISTRY_READ_ERRORS)
    ]


def prov_document(subject: str) -> dict:
    """The lineage of ``subject`` as a W3C PROV-JSON document an outside verifier can check.

    Every activity is one event and carries exactly the fields its hash covers
    (see ledger/chain.py for the canonical encoding) plus its Merkle path and
    the anchor's root, range, tx, block, chain id and registry address.
    ``ledger/verify_prov.py`` checks such a file with web3.py alone.
    """
    graph = lineage_graph(subject)
    doc: dict = {
        "prefix": {"miliao": PROV_NS, "xsd": "http://www.w3.org/2001/XMLSchema#"},
        "entity": {},
        "activity": {},
        "agent": {},
        "wasGeneratedBy": {},
        "used": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
    }
    for node, events in graph.nodes.items():
        kind, _, ident = node.partition(":")
        doc["entity"][_qn(node)] = {"prov:type": _qualified(f"miliao:{kind}"), "prov:label": node,
                                    "miliao:subject": node}
    proofs: dict[int, dict | None] = {}
    damaged: dict[int, Anchor] = {}
    for event in graph.events:
        try:
            proofs[event.seq] = inclusion_proof(event.seq)
        except ValueError:  # the stored batch no longer hashes: say so rather than "not anchored"
            proofs[event.seq] = None
            damaged[event.seq] = _anchor_for(event.seq)
        rec = event.as_record()
        act_id = f"miliao:event/{event.seq}"
        activity = {
            "prov:type": _qualified(f"miliao:{event.event_type}"),
            "prov:startTime": rec.recorded_at,
            "prov:endTime": rec.recorded_at,
            "miliao:seq": event.seq,
            "miliao:prevHash": rec.prev_hash,
            "miliao:hash": rec.hash,
            "miliao:eventType": rec.event_type,
            "miliao:actor": rec.actor,
            "miliao:subject": rec.subject,
            "miliao:payload": rec.payload,
            "miliao:recordedAt": rec.recorded_at,
            "miliao:hashVersion": rec.version,
        }
        proof = proofs[event.seq]
        if event.seq in damaged:
            anchor = damaged[event.seq]
            activity.update(
                {
                    "miliao:anchorStatus": "proof_unavailable",
                    "miliao:root": anchor.root,
                    "miliao:anchorFirstSeq": anchor.first_seq,
                    "miliao:anchorLastSeq": anchor.last_seq,
                }
            )
        elif proof is None:
            activity["miliao:anchorStatus"] = "unanchored"
        else:
            activity.update(
                {
                    "miliao:anchorStatus": "anchored",
                    "miliao:leafIndex": proof["leaf_index"],
                    "miliao:treeSize": proof["tree_size"],
                    # One ordered string: PROV-JSON reads a list value as a set of values.
                    "miliao:merklePath": ",".join(proof["path"]),
                    "miliao:root": proof["root"],
                    "miliao:anchorFirstSeq": proof["anchor"]["first_seq"],
                    "miliao:anchorLastSeq": proof["anchor"]["last_seq"],
                    "miliao:txHash": proof["anchor"]["tx_hash"],
                    "miliao:blockNumber": proof["anchor"]["block_number"],
                    "miliao:chainId": proof["anchor"]["chain_id"],
                    "miliao:registry": proof["anchor"]["registry"],
                }
            )
        doc["activity"][act_id] = activity
        agent_id = "miliao:agent/" + rec.actor
        doc["agent"].setdefault(agent_id, {"prov:label": rec.actor})
        doc["wasAssociatedWith"][f"_:assoc{event.seq}"] = {"prov:activity": act_id, "prov:agent": agent_id}
        doc["wasGeneratedBy"][f"_:gen{event.seq}"] = {"prov:entity": _qn(event.subject), "prov:activity": act_id}
    for n, (source, derived, seq) in enumerate(graph.edges):
        act_id = f"miliao:event/{seq}"
        doc["used"][f"_:use{n}"] = {"prov:activity": act_id, "prov:entity": _qn(source)}
        doc["wasDerivedFrom"][f"_:der{n}"] = {
            "prov:generatedEntity": _qn(derived),
            "prov:usedEntity": _qn(source),
            "prov:activity": act_id,
        }
    registry = _export_registry(proofs.values())
    doc["entity"]["miliao:export"] = {
        "prov:type": _qualified("miliao:lineageExport"),
        "miliao:artifact": subject,
        "miliao:exportedAt": timezone.now().isoformat(),
        # Where an outside verifier reads the anchors: `verify_prov.py --rpc`, `cast --rpc-url`.
        "miliao:chainRpc": settings.CHAIN_PUBLIC_RPC_URL or "json-rpc",
        "miliao:encoding": (
            "event hash = sha256(canonical JSON of {v, seq, prev, type, actor, subject, payload, at}), "
            "v = miliao:hashVersion: 2 is RFC 8785 (JCS), 1 is Python's json.dumps(sort_keys, compact); "
            "leaf = sha256(0x00 || event hash); node = sha256(0x01 || left || right); RFC 9162 paths"
        ),
    }
    if registry is not None:
        # How to call the registry: where it is, on which chain, and the ABI of its read calls.
        doc["entity"]["miliao:export"].update({
            "miliao:registry": registry.address,
            "miliao:chainId": registry.chain_id,
            "miliao:registryAbi": json.dumps(registry_read_abi(), separators=(",", ":")),
        })
    return doc


def _export_registry(proofs) -> ChainRegistry | None:
    """The registry the export's events are anchored at, else the one new anchors go to."""
    for proof in proofs:
        if proof is not None:
            return ChainRegistry.objects.filter(address=proof["anchor"]["registry"],
                                                chain_id=proof["anchor"]["chain_id"]).first()
    return ChainRegistry.objects.order_by("-pk").first()
