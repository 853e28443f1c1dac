"""The demo district: organisations, one user per role, datasets and applications.

Everything is created through actions, so the demo's event log is a real one.
Seeding twice changes nothing.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from access import actions as access_actions
from access.models import Application
from accounts import actions as account_actions
from accounts.models import Organisation, OrganisationKind, Role, User
from catalog import actions as catalog_actions
from catalog.models import DataClass, Dataset, Theme

ORGANISATIONS = [
    ("sh-planning", "上海市规划和自然资源局", "Shanghai Planning and Natural Resources Bureau", OrganisationKind.BUREAU),
    ("pudong", "浦东新区规划资源局", "Pudong District Planning Bureau", OrganisationKind.DISTRICT),
    ("xuhui", "徐汇区规划资源局", "Xuhui District Planning Bureau", OrganisationKind.DISTRICT),
    ("mili-tech", "米粒空间科技有限公司", "Mili Spatial Tech", OrganisationKind.STARTUP),
    ("tongji-lab", "同济空间智能实验室", "Tongji Spatial Intelligence Lab", OrganisationKind.RESEARCH_LAB),
    ("sh-audit", "上海市审计局", "Shanghai Audit Bureau", OrganisationKind.AUDIT_OFFICE),
]

USERS = [
    ("admin", Role.ADMIN, "sh-planning", "平台管理员"),
    ("steward", Role.STEWARD, "sh-planning", "王数据"),
    ("holder", Role.DATA_HOLDER, "pudong", "浦东节点"),
    ("applicant", Role.APPLICANT, "mili-tech", "李创业"),
    ("researcher", Role.APPLICANT, "tongji-lab", "陈研究"),
    ("auditor", Role.AUDITOR, "sh-audit", "赵审计"),
]

DATASETS = [
    ("demo-district", "示范街区空间米料(间/段)", "Demo district units (rooms and segments)", DataClass.OPEN, []),
    ("huangpu-roads", "黄浦区道路段", "Huangpu road segments", DataClass.OPEN, []),
    ("pudong-pipes", "浦东地下管线段", "Pudong underground pipe segments", DataClass.CONDITIONAL, ["pudong"]),
    ("district-rooms", "建筑单元(间)", "Building rooms", DataClass.COMPUTE_ONLY, ["pudong", "xuhui"]),
]
# Descriptive metadata of the demo datasets: description (zh, en), theme, district, keywords.
# The districts are those the seeded rows name, most units first (the generator places blocks
# in districts by seed: 2026's 20,000 rooms fall in Pudong and Jing'an, 2027's 72,000 in
# Pudong, Xuhui and Huangpu; the pipes lie in Pudong): tests/portal/test_demo_smoke.py checks.
METADATA = {
    "demo-district": ("合成示范街区的房间、楼层、建筑、地块与道路、管线、电缆段，经脱敏、脱密、偏转后开放。",
                      "A synthetic demo district: rooms, floors, buildings, parcels and road, pipe and cable "
                      "segments, desensitized, declassified and shifted for open release.",
                      Theme.BUILDINGS, "浦东新区、静安区", ["示范街区", "间", "段", "demo", "rooms", "segments"]),
    "huangpu-roads": ("黄浦区道路中心线段及其属性。", "Road centre-line segments of Huangpu with their attributes.",
                      Theme.TRANSPORT, "黄浦区", ["道路", "交通", "roads", "transport"]),
    "pudong-pipes": ("浦东新区地下给水、燃气管线段，含埋深与管径。",
                     "Underground water and gas pipe segments of Pudong, with depth and diameter.",
                     Theme.INFRASTRUCTURE, "浦东新区", ["地下管线", "管径", "pipes", "underground"]),
    "district-rooms": ("各区建筑内的房间单元，含用途、租金与权属人信息，只能以隐私计算方式使用。",
                       "Rooms inside buildings across districts, with use, rent and owners; usable by "
                       "privacy-preserving computation only.",
                       Theme.BUILDINGS, "浦东新区、徐汇区、黄浦区", ["房间", "用途", "租金", "rooms", "room use", "rent"]),
}


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str
    organisation: str


def _password(state_dir: Path, username: str) -> str:
    """One random password per demo user, kept beside the SQLite file (never in git)."""
    path = state_dir / "demo_passwords" / username
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"miliao-{secrets.token_urlsafe(9)}")
        path.chmod(0o600)
    return path.read_text().strip()


def seed_demo(state_dir: Path, *, federation=None) -> list[Login]:
    """`federation`: the standing SuperLink and the district nodes run (portal.demo_federation):
    seed the district-held rooms and run the federated job on them."""
    for code, name, name_en, kind in ORGANISATIONS:
        if not Organisation.objects.filter(code=code).exists():
            account_actions.create_organisation(actor=None, code=code, name=name, name_en=name_en, kind=kind)
    logins = []
    for username, role, org_code, display in USERS:
        password = _password(state_dir, username)
        if not User.objects.filter(username=username).exists():
            account_actions.create_user(
                actor=None,
                username=username,
                password=password,
                role=role,
                organisation=Organisation.objects.get(code=org_code),
                display_name=display,
            )
        logins.append(Login(username, password, role, org_code))

    steward = User.objects.get(username="steward")
    for slug, title, title_en, data_class, holder_codes in DATASETS:
        if not Dataset.objects.filter(slug=slug).exists():
            description, description_en, theme, district, keywords = METADATA[slug]
            catalog_actions.register_dataset(
                actor=steward,
                slug=slug,
                title=title,
                title_en=title_en,
                description=description,
                description_en=description_en,
                theme=theme,
                district=district,
                keywords=keywords,
                data_class=data_class,
                holders=list(Organisation.objects.filter(code__in=holder_codes)),
            )

    if not Application.objects.exists():
        seed_pipes_release(state_dir, steward)  # so the approval below issues a licence
        researcher = User.objects.get(username="researcher")
        approved = access_actions.submit_application(
            actor=researcher,
            dataset=Dataset.objects.get(slug="pudong-pipes"),
            purpose="地下管线风险评估模型研究 (pipe risk model research)",
        )
        access_actions.approve_application(actor=steward, application=approved, reason="用途明确")
        access_actions.submit_application(
            actor=User.objects.get(username="applicant"),
            dataset=Dataset.objects.get(slug="district-rooms"),
            purpose="训练房间用途识别模型 (train a room-use classifier)",
        )
    seed_release(state_dir, steward)
    seed_sandbox(state_dir, steward)
    seed_innovation(steward)
    if federation:
        from portal.demo_federation import seed_federation

        logins += seed_federation(state_dir, steward, _password, federation)
    return logins


DEMO_ROOMS = 20_000
DEMO_PIPES = 2_000
DEMO_SANDBOX_ROOMS = 72_000  # the generator's first three districts: one SuperNode each
# Two rounds, to keep the demo short: plain averaging, which moves the model further in two
# rounds than FedAdam's small server steps (the default for the ten rounds a real job runs).
DEMO_FEDERATED = {"rounds": 2, "epochs": 1, "batch_size": 1024, "learning_rate": 0.5, "target_epsilon": 3.0,
                  "delta": 1e-5, "min_nodes": 2, "secagg": True, "dp": "client", "local_dp": True,
                  "server_optimizer": "fedavg"}


def pipe_policy() -> dict:
    """Release policy for pipe segments: they carry no rent, so no l-diversity on it (the
    room policy's l would suppress every segment), and nothing about people, so each keeps
    its exact geometry (location "exact", which a policy with a sensitive column is refused)."""
    from releases.desensitize import UNIT_POLICY

    return {**UNIT_POLICY.to_dict(), "sensitive": [], "l": 1, "location": "exact"}


def seed_pipes_release(state_dir: Path, steward: User) -> None:
    """A generated pipe network as version 1 of the conditional pipes dataset, released and
    published, so that approving an application for it issues a licence with downloads."""
    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_pipe_network
    from releases import actions as release_actions
    from releases.pipeline import ReleaseSpec
    from releases.tasks import build_release_task

    dataset = Dataset.objects.get(slug="pudong-pipes")
    if dataset.versions.exists():
        return
    scratch = state_dir / "corpora" / "incoming" / "pudong-pipes.parquet"
    summary = store.write_corpus([generate_pipe_network(seed=2026, count=DEMO_PIPES)], scratch)
    corpus = record_corpus_version(actor=steward, dataset=dataset, file=scratch,
                                   source=f"generator:pipes,seed=2026,count={DEMO_PIPES}", source_crs="EPSG:4490",
                                   summary=summary)
    policy = release_actions.save_policy(
        actor=steward, dataset=dataset,
        spec={**ReleaseSpec(data_class="conditional").to_dict(), "desensitize": pipe_policy()},
    )
    release = release_actions.start_release(actor=steward, corpus=corpus, policy=policy)
    build_release_task(str(release.task_id), release.pk)
    release.refresh_from_db()
    release_actions.publish_release(actor=steward, release=release)


def seed_release(state_dir: Path, steward: User) -> None:
    """A generated district as version 1 of the open demo dataset, and a published release of
    it, built by the same pipeline and recorded by the same actions as a steward's."""
    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district
    from releases import actions as release_actions
    from releases.pipeline import ReleaseSpec
    from releases.tasks import build_release_task

    dataset = Dataset.objects.get(slug="demo-district")
    if dataset.versions.exists():
        return
    scratch = state_dir / "corpora" / "incoming" / "demo-district.parquet"
    summary = store.write_corpus(generate_district(seed=2026, rooms=DEMO_ROOMS), scratch)
    corpus = record_corpus_version(actor=steward, dataset=dataset, file=scratch,
                                   source=f"generator:seed=2026,rooms={DEMO_ROOMS}", source_crs="EPSG:4490",
                                   summary=summary)
    policy = release_actions.save_policy(
        actor=steward, dataset=dataset,
        spec=ReleaseSpec(data_class="open", outputs=("geoparquet", "geopackage", "geojson")).to_dict(),
    )
    release = release_actions.start_release(actor=steward, corpus=corpus, policy=policy)
    # The demo builds inline rather than waiting for the worker thread to start.
    build_release_task(str(release.task_id), release.pk)
    release.refresh_from_db()
    release_actions.publish_release(actor=steward, release=release)


def seed_sandbox(state_dir: Path, steward: User) -> None:
    """The compute-only rooms the bureau holds: a generated version, the lab's approved
    application with a privacy budget, and the version published for code-to-data (PySyft).
    (The federated job runs on the districts' own rows: portal.demo_federation.)"""
    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district
    from jobs import actions as job_actions

    dataset = Dataset.objects.get(slug="district-rooms")
    if not dataset.versions.exists():
        scratch = state_dir / "corpora" / "incoming" / "district-rooms.parquet"
        summary = store.write_corpus(generate_district(seed=2027, rooms=DEMO_SANDBOX_ROOMS), scratch)
        record_corpus_version(actor=steward, dataset=dataset, file=scratch,
                              source=f"generator:seed=2027,rooms={DEMO_SANDBOX_ROOMS}", source_crs="EPSG:4490",
                              summary=summary)
    researcher = User.objects.get(username="researcher")
    application = Application.objects.filter(organisation=researcher.organisation, dataset=dataset).first()
    if application is None:
        application = access_actions.submit_application(
            actor=researcher, dataset=dataset,
            purpose="房间用途识别的联邦学习研究 (federated room-use classification research)")
        access_actions.approve_application(actor=steward, application=application, reason="仅可计算，隐私预算 ε=10",
                                           epsilon="10", delta="1e-5")
    if not dataset.syft_datasets.exists():
        job_actions.publish_syft_dataset(actor=steward, dataset=dataset)


def seed_innovation(steward: User) -> None:
    """An open scenario and a month-long challenge on it, scored on the compute-only rooms:
    teams register and submit from the portal."""
    import datetime

    from django.utils import timezone

    from innovation import actions as innovation_actions
    from innovation.models import Scenario

    if Scenario.objects.exists():
        return
    rooms = Dataset.objects.get(slug="district-rooms")
    scenario = innovation_actions.open_scenario(
        actor=steward, slug="building-use", title="建筑用途识别", title_en="Building-use recognition",
        background="城市更新片区需要掌握房间的实际用途，以核查规划实施与用途变更。\n"
                   "Urban renewal needs the actual use of rooms, to check plan implementation and changes of use.",
        contact="规划实施处 王数据 (steward)", datasets=[rooms])
    now = timezone.now()
    innovation_actions.open_challenge(
        actor=steward, scenario=scenario, slug="room-use-2026", title="房间用途识别挑战赛 2026", task="room-use",
        training_dataset=Dataset.objects.get(slug="demo-district"), hidden_corpus=rooms.versions.order_by("version").first(),
        rules="每队每日最多 5 次提交；模型不得用于识别或定位个人。Five submissions per team per day; "
              "models may not be used to identify or locate people.",
        opens_at=now, final_at=now + datetime.timedelta(days=30), closes_at=now + datetime.timedelta(days=31))
