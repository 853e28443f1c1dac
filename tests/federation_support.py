"""One standing federation per test session, run the way districts run it: the platform's
SuperLink (TLS, node authentication, its database on disk) and three district nodes as
processes of their own, each with its own state folder in which it generated and ingested its
own district's rows with the node-side tool (`python -m sandbox.federated.node`). The
platform stores none of them: each test records the nodes and what they published."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, wait_for

ROOMS = 72_000  # the generator's first three districts
SEED = 7
# node name, the district whose rows it holds, its organisation's code
NODES = (("pudong-node", "浦东新区", "pudong"), ("huangpu-node", "黄浦区", "huangpu"),
         ("jingan-node", "静安区", "jingan"))
STATE = Path(tempfile.gettempdir()) / f"miliao-federation-{os.getpid()}"


def _port() -> int:
    from sandbox.federated.deploy import free_port

    return free_port()


PORT = _port()
ADDRESS = f"127.0.0.1:{PORT}"
CA = STATE / "superlink" / "tls" / "ca.crt"


def flower_settings() -> dict:
    """The platform's FLOWER_* settings for this session's SuperLink (the workers' environment)."""
    return {"FLOWER_SUPERLINK": ADDRESS, "FLOWER_ROOT_CERTIFICATES": str(CA), "FLOWER_STATE_DIR": str(STATE)}


def node_tool(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox.federated.node", *args], cwd=REPO, capture_output=True,
                          text=True, check=check, timeout=300)


class StandingFederation:
    def __init__(self):
        from sandbox.federated.deploy import SuperLink

        self.superlink = SuperLink(STATE / "superlink", PORT)
        self.client = self.superlink.federation(STATE / "cli-tests")
        self.nodes: dict[str, SimpleNamespace] = {}

    def start(self) -> None:
        self.superlink.start()
        making = []
        for name, district, org in NODES:
            home = STATE / name
            public = node_tool("init", "--home", str(home), "--name", name).stdout.strip()
            making.append(subprocess.Popen(
                [sys.executable, "-m", "sandbox.federated.node", "ingest", "--home", str(home), "--dataset",
                 "district-rooms", "--generate", f"{SEED}:{ROOMS}", "--district", district], cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            self.nodes[name] = SimpleNamespace(name=name, district=district, org=org, home=home, public_key=public,
                                               node_id=self.client.register(home / "keys" / "node.pub", name),
                                               proc=None)
        for proc in making:  # each node ingests its own district at once, as on separate machines
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
        for node in self.nodes.values():
            node.manifest = json.loads(node_tool("publish", "--home", str(node.home), "--dataset",
                                                 "district-rooms").stdout)
            self.start_node(node.name, wait=False)
        self.wait_online(len(self.nodes))

    def start_node(self, name: str, *, wait: bool = True) -> None:
        node = self.nodes[name]
        with open(node.home / "node.log", "ab") as log:
            node.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox.federated.node", "start", "--home", str(node.home), "--superlink",
                 ADDRESS, "--root-certificates", str(CA)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        if wait:
            self.wait_online(len(self.nodes))

    def online(self) -> set[str]:
        return {n["node-id"] for n in self.client.supernodes() if n.get("status") == "online"}

    def wait_online(self, count: int, timeout: float = 180) -> None:
        wait_for(lambda: len(self.online() & {n.node_id for n in self.nodes.values()}) >= count, timeout=timeout,
                 interval=0.5, what=f"{count} district nodes online")

    def kill_node(self, name: str) -> None:
        import signal

        from sandbox.federated.deploy import kill_tree

        node = self.nodes[name]
        kill_tree(node.proc, signal.SIGKILL)
        node.proc.wait()

    def restart_superlink(self) -> None:
        """Stop the SuperLink and start it again on the same state: the nodes reconnect."""
        self.superlink.stop()
        self.superlink.start()

    def close(self) -> None:
        from sandbox.federated.deploy import stop_process

        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                stop_process(node.proc)
        self.superlink.stop()


_RUNNING: list[StandingFederation] = []


@pytest.fixture(scope="session")
def standing_federation():
    """Each test module imports this fixture, which makes it a fixture of each module's own
    for pytest (one session-scoped instance per module): they all share the one federation
    this process starts, which the first to start it stops at the session's end."""
    from django.conf import settings

    if _RUNNING:
        yield _RUNNING[0]
        return
    federation = StandingFederation()
    for key, value in flower_settings().items():  # this process's settings (the workers' come from the env)
        setattr(settings, key, Path(value) if key != "FLOWER_SUPERLINK" else value)
    started = time.monotonic()
    try:
        federation.start()
        federation.start_seconds = time.monotonic() - started
        _RUNNING.append(federation)
        yield federation
    finally:
        _RUNNING.clear()
        federation.close()
        shutil.rmtree(STATE, ignore_errors=True)


def district_rooms(w, federation: StandingFederation):
    """The world's compute-only rooms, held by three districts: each node recorded (its key is
    registered at the SuperLink since the session started) and its partition published by
    its district's data holder, as `python -m sandbox.federated.node publish` wrote it."""
    from accounts import actions as account_actions
    from federation import actions
    from federation.models import DistrictNode

    orgs = {"pudong": w.district}
    holders = {"pudong": w.data_holder}
    for _, _, code in NODES[1:]:
        orgs[code] = account_actions.create_organisation(actor=None, code=code, name=f"{code} 名称", kind="district")
        holders[code] = account_actions.create_user(actor=None, username=f"holder-{code}", password="pw-Miliao-2026!",
                                                    role="data_holder", organisation=orgs[code])
    w.rooms = actions.hold_at_districts(actor=w.steward, dataset=w.rooms, holders=list(orgs.values()))
    w.nodes = {}
    for node in federation.nodes.values():
        recorded = DistrictNode.objects.filter(name=node.name).first() or actions._record_node(
            w.steward, orgs[node.org], node.name, " ".join(node.public_key.split()[:2]), node.node_id)
        actions.publish_partition(actor=holders[node.org], node=recorded, manifest=node.manifest)
        w.nodes[node.name] = recorded
    w.holders = holders
    return w
