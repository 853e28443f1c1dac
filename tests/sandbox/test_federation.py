"""The federation's processes as a real deployment runs them: TLS with the federation's own
CA, and only SuperNodes whose keys were registered get in. A node that cannot join is named
at once instead of after the start-up timeout."""
from __future__ import annotations

import time

import pytest

from sandbox.federated.deploy import FederationError, LocalDeployment

pytestmark = pytest.mark.sandbox


@pytest.fixture
def federation(tmp_path):
    deployment = LocalDeployment(tmp_path / "flower")
    deployment.start_superlink()
    yield deployment
    deployment.close()


def test_a_registered_supernode_joins_over_tls(federation, tmp_path):
    federation.start_node("holder-0", tmp_path / "data-0")
    federation.wait_nodes(1, timeout=60)
    nodes = federation.cli("supernode", "ls")["nodes"]
    assert [n["status"] for n in nodes] == ["online"]
    assert "Uvicorn running on https://" in federation.log_tail("superlink", 100_000)


def test_a_supernode_whose_key_nobody_registered_is_refused_and_named(federation, tmp_path):
    federation.start_node("rogue", tmp_path / "data-0", register=False)
    started = time.monotonic()
    with pytest.raises(FederationError, match="SuperNode rogue exited while starting:.*activate SuperNode"):
        federation.wait_nodes(1, timeout=90)
    assert time.monotonic() - started < 60
    assert federation.online_nodes() == 0
