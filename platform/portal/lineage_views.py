"""The auditor's lineage page: an artifact's graph, each event's anchor, and a Verify button."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from kernel import roles
from provenance import anchoring, lineage
from provenance import rules as provenance_rules
from provenance.models import Anchor, AnchorStatus

KIND_NAMES = {
    "catalog.dataset": _("数据集"),
    "corpora.corpusversion": _("语料版本"),
    "releases.releasepolicy": _("发布策略"),
    "releases.release": _("发布"),
    "access.application": _("申请"),
    "access.licence": _("数据许可"),
    "access.download": _("下载记录"),
    "access.leakfinding": _("泄露溯源结果"),
    "budgets.privacybudget": _("隐私预算"),
    "defense.alert": _("风险告警"),
}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 46, 70, 24, 16


def layout(graph: lineage.LineageGraph) -> dict:
    """Columns by depth (sources left, the artifact's descendants right), for an SVG drawing."""
    depth = graph.depth()
    columns: dict[int, list[str]] = {}
    for node in sorted(graph.nodes):
        columns.setdefault(depth[node], []).append(node)
    lo = min(columns)
    boxes = {}
    for d, nodes in columns.items():
        for row, node in enumerate(nodes):
            kind, _sep, ident = node.partition(":")
            boxes[node] = {
                "subject": node,
                "x": PAD + (d - lo) * (NODE_W + GAP_X),
                "y": PAD + row * (NODE_H + GAP_Y),
                "kind": KIND_NAMES.get(kind, kind),
                "ident": ident,
                "focus": node == graph.subject,
                "events": len(graph.nodes[node]),
            }
    edges = []
    for source, derived, seq in graph.edges:
        a, b = boxes[source], boxes[derived]
        edges.append(
            {"x1": a["x"] + NODE_W, "y1": a["y"] + NODE_H / 2, "x2": b["x"], "y2": b["y"] + NODE_H / 2, "seq": seq}
        )
    width = PAD * 2 + (max(columns) - lo + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(n) for n in columns.values()) * (NODE_H + GAP_Y) - GAP_Y
    return {"boxes": list(boxes.values()), "edges": edges, "width": width, "height": height,
            "node_w": NODE_W, "node_h": NODE_H}


@login_required
def lineage_page(request):
    provenance_rules.check_view_events(request.user)
    subject = (request.POST.get("subject") or request.GET.get("subject") or "").strip()
    try:
        graph = lineage.lineage_graph(subject)
    except lineage.UnknownArtifact as exc:
        raise Http404(str(exc)) from exc
    report = None
    if request.method == "POST":
        provenance_rules.check_verify_events(request.user)
        report = lineage.verify_lineage(subject)
    events = graph.events
    anchors = list(
        Anchor.objects.filter(status=AnchorStatus.CONFIRMED, last_seq__gte=events[0].seq, first_seq__lte=events[-1].seq)
        .select_related("registry")
    )
    rows = []
    for event in events:
        anchor = next((a for a in anchors if a.first_seq <= event.seq <= a.last_seq), None)
        rows.append({"event": event, "anchor": anchor})
    return render(
        request,
        "portal/lineage.html",
        {
            "subject": subject,
            "graph": layout(graph),
            "truncated": graph.truncated,
            "rows": rows,
            "report": report,
            "can_verify": roles.allowed(provenance_rules.check_verify_events, request.user),
            "status": anchoring.ledger_status(),
        },
    )
