"""The standing SuperLink as the platform sees it: Flower's CLI against its Control API
(settings.FLOWER_SUPERLINK, verified against FLOWER_ROOT_CERTIFICATES), and each node's
state there (registered, online, offline) with its last contact."""
from __future__ import annotations

import os

from django.conf import settings

from sandbox.federated.deploy import Federation, FederationError


def superlink() -> Federation:
    return Federation(settings.FLOWER_SUPERLINK, settings.FLOWER_ROOT_CERTIFICATES,
                      settings.FLOWER_STATE_DIR / "cli" / str(os.getpid()))


def node_states() -> dict[str, dict] | None:
    """Flower node id -> {status, last_contact}; None when the SuperLink does not answer."""
    client = superlink()
    if not client.healthy():  # at once, rather than after the CLI's own retries
        return None
    try:
        nodes = client.supernodes()
    except FederationError:
        return None
    states = {}
    for n in nodes:
        status = str(n.get("status", ""))
        last = n.get("online-at") if status == "online" else n.get("offline-at")
        states[str(n.get("node-id"))] = {"status": status,
                                         "last_contact": None if last in (None, "N/A") else str(last)}
    return states


def online(node_ids) -> list[str]:
    """Which of `node_ids` are online now (raises FederationError when the SuperLink does not answer)."""
    wanted = set(node_ids)
    client = superlink()
    if not client.healthy():
        raise FederationError(f"the SuperLink at {client.address} does not answer")
    return [str(n["node-id"]) for n in client.supernodes()
            if n.get("status") == "online" and str(n.get("node-id")) in wanted]
