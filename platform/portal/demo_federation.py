"""The demo's federation, run the way districts run it: the platform's standing SuperLink
(its TLS files and database under FLOWER_STATE_DIR) and three district nodes as processes of
their own, each with its own state folder beside the platform's (STATE_DIR-districts/<node>:
never inside STATE_DIR, as if on its own machine) in which the node-side tool generated and ingested its own district's rows. The
seed then registers the nodes' keys, records what each published, and runs the federated job
on them. The platform stores none of the districts' rows."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

DATASET = "district-rooms-fed"
SEED, ROOMS = 2032, 72_000  # a generated city whose three districts are the nodes' (not the bureau-held rooms' 2027)
# node name, the district whose rows it holds, its organisation (code, name, English name)
NODES = (("pudong-node", "浦东新区", ("pudong", "浦东新区规划资源局", "Pudong District Planning Bureau")),
         ("huangpu-node", "黄浦区", ("huangpu", "黄浦区规划资源局", "Huangpu District Planning Bureau")),
         ("jingan-node", "静安区", ("jingan", "静安区规划资源局", "Jing'an District Planning Bureau")))


def districts_dir() -> Path:
    """Where the demo's district nodes keep their folders: beside the platform's state folder,
    never in it (STATE_DIR var → var-districts), as if each were on its own machine."""
    state = Path(settings.STATE_DIR)
    return state.parent / f"{state.name}-districts"


def node_home(name: str) -> Path:
    return districts_dir() / name


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox.federated.node", *args], cwd=settings.REPO_DIR,
                          capture_output=True, text=True, check=True, timeout=600)


class DemoFederation:
    """Start (or find running) the SuperLink, and start the three district nodes."""

    def __init__(self, log_dir: Path):
        from sandbox.federated.deploy import SuperLink

        host, _, port = settings.FLOWER_SUPERLINK.rpartition(":")
        self.superlink = SuperLink(settings.FLOWER_STATE_DIR / "superlink", int(port), host=host)
        self.log_dir = log_dir
        self.nodes: dict[str, subprocess.Popen] = {}
        self.started_superlink = False
        self.preexec = None

    def start(self, preexec=None) -> None:

        if not self.superlink.federation().healthy():
            self.superlink.start()
            self.started_superlink = True
        making = {}
        for name, district, _ in NODES:
            home = node_home(name)
            if not (home / "node.json").exists():
                _tool("init", "--home", str(home), "--name", name)
            if not (home / "partitions" / DATASET / "units.parquet").exists():
                making[name] = subprocess.Popen(
                    [sys.executable, "-m", "sandbox.federated.node", "ingest", "--home", str(home), "--dataset",
                     DATASET, "--generate", f"{SEED}:{ROOMS}", "--district", district], cwd=settings.REPO_DIR,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, proc in making.items():  # each district ingests its own rows, at once
            out, _ = proc.communicate(timeout=600)
            if proc.returncode:
                raise RuntimeError(f"district node {name} could not ingest its rows: {out[-1000:]}")
        self.preexec = preexec

    def start_nodes(self) -> None:
        """Start the district nodes whose processes are not running: once their keys are
        registered (a SuperNode whose key the SuperLink does not know exits at once)."""
        from sandbox.federated import node

        for name, _, _ in NODES:
            if name not in self.nodes:
                self.nodes[name] = node.spawn(node_home(name), self.superlink.address, self.superlink.tls["ca"],
                                              log=self.log_dir / f"{name}.log", preexec_fn=self.preexec)

    def stop(self) -> None:
        from sandbox.federated.deploy import stop_process

        for proc in self.nodes.values():
            stop_process(proc)
        if self.started_superlink:
            self.superlink.stop()

    def describe(self) -> str:
        return (f"Federation: SuperLink at {self.superlink.address} (state in {self.superlink.state}), district nodes "
                + ", ".join(f"{n} (pid {p.pid})" for n, p in self.nodes.items())
                + f" with their own state in {districts_dir()}.")


def seed_federation(state_dir: Path, steward, password, federation: DemoFederation) -> list:
    """The district-held rooms: the districts' organisations and data holders, the dataset,
    each node's key registered and what it published recorded, the lab's approved application,
    and a federated job run on the nodes, reviewed and released. Returns the holders' logins."""
    from access import actions as access_actions
    from access.models import Application
    from accounts import actions as account_actions
    from accounts.models import Organisation, Role, User
    from catalog import actions as catalog_actions
    from catalog.models import Dataset
    from federation import actions, live
    from federation.models import DistrictNode, NodePartition
    from jobs import actions as job_actions
    from jobs import runner
    from jobs.models import Job

    from portal.seed import DEMO_FEDERATED, Login
    from sandbox.federated.node import publish

    logins = []
    orgs = {}
    for name, _, (code, org_name, org_name_en) in NODES:
        orgs[name] = Organisation.objects.filter(code=code).first() or account_actions.create_organisation(
            actor=None, code=code, name=org_name, name_en=org_name_en, kind="district")
        username = "holder" if code == "pudong" else f"holder-{code}"
        if not User.objects.filter(username=username).exists():
            account_actions.create_user(actor=None, username=username, password=password(state_dir, username),
                                        role=Role.DATA_HOLDER, organisation=orgs[name], display_name=f"{org_name}节点")
        if username != "holder":
            logins.append(Login(username, password(state_dir, username), Role.DATA_HOLDER, code))
    dataset = Dataset.objects.filter(slug=DATASET).first()
    if dataset is None:
        dataset = catalog_actions.register_dataset(
            actor=steward, slug=DATASET, title="建筑单元(间) · 各区节点持有", title_en="Building rooms, held by the districts",
            description="各区的房间单元留在各区自己的联邦节点上，平台不存储任何一行；只能以联邦学习方式使用。",
            description_en="Each district's rooms stay on the district's own federated node; the platform stores no "
                           "row of them. Usable through federated learning only.",
            theme="buildings", keywords=["联邦学习", "federated"], data_class="compute_only")
        dataset = actions.hold_at_districts(actor=steward, dataset=dataset, holders=list(orgs.values()))
    for name, _, _ in NODES:
        home = node_home(name)
        node = DistrictNode.objects.filter(name=name).first()
        if node is None:
            node = actions.register_node(actor=steward, organisation=orgs[name], name=name,
                                         public_key=(home / "keys" / "node.pub").read_text())
        if not NodePartition.objects.filter(node=node, dataset=dataset).exists():
            holder = User.objects.filter(organisation=orgs[name], role=Role.DATA_HOLDER).first()
            actions.publish_partition(actor=holder, node=node, manifest=json.loads(json.dumps(publish(home, DATASET))))
    federation.start_nodes()  # their keys are registered now
    if Job.objects.filter(dataset=dataset).exists():
        return logins
    researcher = User.objects.get(username="researcher")
    if not Application.objects.filter(organisation=researcher.organisation, dataset=dataset).exists():
        application = access_actions.submit_application(
            actor=researcher, dataset=dataset,
            purpose="房间用途识别的联邦学习研究 (federated room-use classification research)")
        access_actions.approve_application(actor=steward, application=application, reason="仅可计算，隐私预算 ε=10",
                                           epsilon="10", delta="1e-5")
    ids = [n.flower_node_id for n in DistrictNode.objects.filter(name__in=[n for n, _, _ in NODES])]
    deadline = time.monotonic() + 300
    while len(live.online(ids)) < len(ids) and time.monotonic() < deadline:  # the nodes were just started
        time.sleep(1)
    job = job_actions.submit_job(actor=researcher, dataset=dataset, kind="federated", title="房间用途 · 三区联邦",
                                 task="room-use", params=DEMO_FEDERATED)
    job = job_actions.approve_job(actor=steward, job=job, note="内置任务，SecAgg+ 与 DP-SGD")
    runner.run_job(str(job.task_id), job.pk)  # inline: the worker thread starts only when serving
    job.refresh_from_db()
    if job.status == "review":
        job_actions.release_job(actor=steward, job=job, note="模型卡已核对")
    return logins
