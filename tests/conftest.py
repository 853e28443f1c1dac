"""Shared fixtures: a small world of organisations and users built through actions,
API clients per role, and a real Celery worker on the test database."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Correct-horse-42"
ROLES = ["applicant", "steward", "data_holder", "auditor", "admin"]


def build_world():
    """Two bureaus, a district, a startup, a lab, an audit office; one user per role
    (plus a second steward and an applicant inside the bureau, for the ownership and
    separation-of-duties rules); datasets of every class; three applications."""
    from access import actions as access_actions
    from accounts import actions as account_actions
    from catalog import actions as catalog_actions

    def org(code, kind):
        return account_actions.create_organisation(actor=None, code=code, name=f"{code} 名称", kind=kind)

    w = SimpleNamespace()
    w.bureau = org("sh-planning", "bureau")
    w.other_bureau = org("sz-planning", "bureau")
    w.district = org("pudong", "district")
    w.startup = org("mili-tech", "startup")
    w.lab = org("tongji-lab", "research_lab")
    w.audit = org("sh-audit", "audit_office")

    def user(username, role, organisation):
        return account_actions.create_user(
            actor=None, username=username, password=PASSWORD, role=role, organisation=organisation
        )

    w.applicant = user("applicant", "applicant", w.startup)
    w.researcher = user("researcher", "applicant", w.lab)
    w.bureau_applicant = user("bureau-applicant", "applicant", w.bureau)
    w.steward = user("steward", "steward", w.bureau)
    w.other_steward = user("other-steward", "steward", w.other_bureau)
    w.data_holder = user("holder", "data_holder", w.district)
    w.auditor = user("auditor", "auditor", w.audit)
    w.admin = user("admin", "admin", w.bureau)

    w.rooms = catalog_actions.register_dataset(
        actor=w.steward, slug="district-rooms", title="建筑单元", data_class="compute_only", holders=[w.district]
    )
    w.pipes = catalog_actions.register_dataset(
        actor=w.steward, slug="pudong-pipes", title="地下管线", data_class="conditional"
    )
    w.roads = catalog_actions.register_dataset(
        actor=w.steward, slug="huangpu-roads", title="道路段", data_class="open"
    )
    w.foreign = catalog_actions.register_dataset(
        actor=w.other_steward, slug="sz-parcels", title="深圳地块", data_class="conditional"
    )
    w.app_startup = access_actions.submit_application(
        actor=w.applicant, dataset=w.pipes, purpose="pipe risk model for our product"
    )
    w.app_lab = access_actions.submit_application(
        actor=w.researcher, dataset=w.rooms, purpose="room-use classification research"
    )
    w.app_own_bureau = access_actions.submit_application(
        actor=w.bureau_applicant, dataset=w.pipes, purpose="internal planning study of pipes"
    )
    from progress.actions import queue_task

    # Nothing consumes it: dispatch is a no-op, so tests can look at a queued task.
    w.steward_task = queue_task("test.idle", label="idle", actor=w.steward, dispatch=lambda _id: None)
    w.by_role = {
        "applicant": w.applicant,
        "steward": w.steward,
        "data_holder": w.data_holder,
        "auditor": w.auditor,
        "admin": w.admin,
    }
    return w


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at full strength costs ~0.3 s a user; the suite builds many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db):
    return build_world()


@pytest.fixture
def live_world(transactional_db):
    """The same world, committed, for a worker process or a browser to see."""
    return build_world()


def api_client(user=None):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api():
    return api_client


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process, consuming the Redis broker, on the test database."""
    from django.conf import settings

    if settings.EMBEDDED_BROKER:
        pytest.skip("needs CELERY_BROKER_URL=redis://… (make test starts Redis)")
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "platform"), str(REPO)])
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "miliao", "worker",
            "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel=INFO", "--hostname", f"test-{os.getpid()}@%h",
        ],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        from miliao.celery import app

        wait_for(
            lambda: proc.poll() is not None or app.control.ping(timeout=0.5),
            timeout=60,
            what="the Celery worker to answer a ping",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited: {log_path.read_text()[-3000:]}")
        yield SimpleNamespace(process=proc, log_path=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


CAPABILITIES = {"foundation", "release", "access", "ledger", "sandbox", "innovation"}


def pytest_collection_modifyitems(config, items):
    """Every test names its capability, so `make test PYTEST_ARGS='-m ledger'` selects it."""
    unmarked = [item.nodeid for item in items if not CAPABILITIES & {m.name for m in item.iter_markers()}]
    if unmarked:
        raise pytest.UsageError(f"tests without a capability marker ({', '.join(sorted(CAPABILITIES))}): {unmarked[:5]}")
    unflagged = [
        item.nodeid for item in items
        if "browser" in item.fixturenames and not item.get_closest_marker("browser")
    ]
    if unflagged:
        raise pytest.UsageError(f"browser tests must carry the 'browser' marker: {unflagged[:5]}")
