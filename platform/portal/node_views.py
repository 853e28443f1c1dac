"""The district nodes page: every node a user may see (federation.queries.visible_nodes) with its
state at the standing SuperLink now, its last contact, its device and the partitions on it;
a steward registers a node's public key there and revokes a node (a confirmation step first).
Forms are read with the federation API's serializers and go to the same actions."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Organisation, OrganisationKind
from federation import actions
from federation import rules as federation_rules
from federation.api import RegisterSerializer, RevokeSerializer
from federation.queries import described, visible_nodes
from kernel import roles
from kernel.errors import ActionError, Refused
from provenance import rules as provenance_rules

from . import forms, readable

# A node's state as the page says it, in words (the badge's colour is its CSS class).
STATE_LABELS = {
    "online": gettext_lazy("在线"),
    "offline": gettext_lazy("离线"),
    "registered": gettext_lazy("已注册，从未连接"),
    "revoked": gettext_lazy("已吊销"),
    "unknown": gettext_lazy("状态未知"),
}


def node_rows(nodes) -> list[dict]:
    """Each node with its state now (one question to the SuperLink for all of them), for a table."""
    nodes = list(nodes)
    if not nodes:
        return []  # nothing to ask the SuperLink about
    rows = []
    for node, seen in zip(nodes, described(nodes)):
        last = seen["last_contact"]
        rows.append({"node": node, "state": seen["state"], "state_label": STATE_LABELS[seen["state"]],
                     "last_contact": (parse_datetime(last) or last) if last else None,
                     "device": readable.device_label(seen["device"]),
                     "partitions": sorted(node.partitions.all(), key=lambda p: p.dataset.slug)})
    return rows


@login_required
def node_list(request):
    """The nodes table, and for a steward the register form (a POST here registers)."""
    nodes = visible_nodes(request.user)
    may_manage = roles.allowed(federation_rules.check_manage_nodes, request.user)
    errors = {}
    if request.method == "POST":
        try:
            federation_rules.check_manage_nodes(request.user)
            body = forms.validated(RegisterSerializer, request.POST)
            node = actions.register_node(actor=request.user, **body)
        except Refused:
            raise  # the 403 page: miliao.middleware.ActionErrorPageMiddleware
        except ActionError as exc:
            errors = forms.errors_of(exc)
        else:
            messages.success(request, _("节点 %(name)s 已在 SuperLink 注册，等待它首次连接。") % {"name": node.name})
            return redirect("node-list")
    rows = node_rows(nodes)
    return render(request, "portal/nodes.html", {
        "rows": rows, "may_manage": may_manage, "errors": errors,
        "values": request.POST if request.method == "POST" else {},
        "districts": Organisation.objects.filter(kind=OrganisationKind.DISTRICT).order_by("code") if may_manage else [],
        "unknown": any(r["state"] == "unknown" for r in rows),
        "sees_events": roles.allowed(provenance_rules.check_view_events, request.user),
        "superlink": settings.FLOWER_SUPERLINK,
    }, status=400 if errors else 200)


@login_required
@require_POST
def revoke_node(request, name: str):
    """Revoke a node after a confirmation step: the SuperLink forgets its key."""
    node = get_object_or_404(visible_nodes(request.user), name=name)
    federation_rules.check_manage_nodes(request.user)
    asked = forms.confirmation(request, title=_("吊销节点 %(name)s？") % {"name": node.name}, consequence=_(
        "SuperLink 将删除该节点的公钥，节点立即断开且无法再连接；同一公钥不能再次注册，须在节点上生成新的密钥对。"))
    if asked is not None:
        return asked
    try:
        body = forms.validated(RevokeSerializer, request.POST)
        actions.revoke_node(actor=request.user, node=node, **body)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("节点 %(name)s 已吊销。") % {"name": node.name})
    return redirect("node-list")
