"""Reads of the district nodes that the API and the portal both show: the nodes a user may
see, each with its state at the standing SuperLink now."""
from __future__ import annotations

from . import live, rules
from .models import DistrictNode, NodeStatus


def visible_nodes(user):
    """The nodes `user` may see (federation.rules), with their districts and partitions."""
    return rules.visible_nodes(
        user, DistrictNode.objects.select_related("organisation").prefetch_related("partitions__dataset"))


def described(nodes) -> list[dict]:
    states = live.node_states()
    out = []
    for node in nodes:
        seen = (states or {}).get(node.flower_node_id, {})
        if node.status == NodeStatus.REVOKED:
            state = "revoked"
        elif states is None:
            state = "unknown"
        else:
            state = {"online": "online", "offline": "offline"}.get(seen.get("status"), "registered")
        out.append({"name": node.name, "organisation": node.organisation, "status": node.status, "state": state,
                    "last_contact": seen.get("last_contact"), "device": node.device or "",
                    "flower_node_id": node.flower_node_id, "registered_at": node.registered_at,
                    "partitions": [{"dataset": p.dataset.slug, "units": p.units, "cells": len(p.cells),
                                    "published_at": p.published_at.isoformat()} for p in node.partitions.all()]})
    return out
