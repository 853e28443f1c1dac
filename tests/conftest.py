"""Shared fixtures: a small world of organisations and users built through actions,
API clients per role, and a real Celery worker on the test database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
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


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # DRF's throttles count in Django's cache (per process): one test's requests never
    # throttle the next one's.
    yield
    from django.core.cache import cache

    cache.clear()


UNWORKED_QUEUE = "tests-without-a-worker"


@pytest.fixture(autouse=True)
def _tasks_only_where_a_worker_is_asked_for(request):
    """A test that does not ask for `celery_worker` sends its Celery tasks to a queue no worker
    consumes, emptied at its end. Otherwise its tasks would either wait in Redis for the
    session's workers, which start later and would run them against a later test's rows (ids
    restart with the database), or reach those workers at once, when an earlier test has
    started them, and run a job the test runs itself."""
    if "celery_worker" in request.fixturenames:
        yield
        return
    from unittest import mock

    from miliao.celery import app

    send_task, sent = app.send_task, []

    def unworked(name, *args, **options):
        sent.append(name)
        return send_task(name, *args, **{**options, "queue": UNWORKED_QUEUE})

    with mock.patch.object(app, "send_task", unworked):
        yield
    from django.conf import settings

    if sent and not settings.EMBEDDED_BROKER:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(UNWORKED_QUEUE)


@pytest.fixture(autouse=True)
def _english_outside_requests():
    # Messages follow the language of the request that runs the action; an action a test
    # calls directly runs in English, so its refusals read as the tests quote them. Pages and
    # API requests still choose their own language (the portal's default is zh-Hans).
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def world(db):
    return build_world()


@contextmanager
def rolled_back_at_the_end(django_db_blocker):
    """A transaction around a whole module (or class): what a module-scoped fixture builds in
    it is there for every test of the module, and gone at its end. Each test still runs in a
    savepoint of its own (pytest-django's `db` nests its atomic block in this one), so no test
    sees what another changed. For tests with `db` only: a `transactional_db` test would
    commit and flush through it."""
    from django.db import transaction
    from django.test import override_settings

    atomic = transaction.atomic()
    # As Django's TestCase marks its own class-wide block: the actions' durable blocks nest in it.
    atomic._from_testcase = True
    with django_db_blocker.unblock(), atomic, \
            override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield
        transaction.set_rollback(True)


def per_test(shared):
    """A test's own copy of a world built once per module: its model instances and dicts are
    deep copies (as Django's ``setUpTestData`` hands class-level objects to each test), so
    what a test changes in memory never reaches the next; the rows themselves are undone by
    the test's savepoint."""
    import copy

    return copy.deepcopy(shared)


@pytest.fixture(scope="module")
def module_world(django_db_setup, django_db_blocker):
    """`build_world()` once per module, rolled back at its end; tests take `per_test` copies."""
    with rolled_back_at_the_end(django_db_blocker):
        yield build_world()


@pytest.fixture
def live_world(transactional_db):
    """The same world, committed, for a worker process or a browser to see."""
    return build_world()


def add_release(w, *, rooms: int = 400, seed: int = 3, on_worker: bool = False):
    """A corpus version of the open roads dataset, its default policy and a built release,
    made the way the Celery tasks make them: the build runs inline here, or, with
    ``on_worker`` (committed worlds, where the session's worker takes the task), there."""
    from pathlib import Path

    from django.conf import settings

    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district
    from releases import actions as release_actions
    from releases.pipeline import ReleaseSpec
    from releases.tasks import build_release_task

    scratch = Path(settings.STATE_DIR) / "scratch" / f"{w.roads.slug}-{seed}-{rooms}.parquet"
    summary = store.write_corpus(generate_district(seed=seed, rooms=rooms), scratch)
    w.corpus = record_corpus_version(actor=w.steward, dataset=w.roads, file=scratch, source="generator",
                                     source_crs="EPSG:4490", summary=summary)
    w.policy = release_actions.save_policy(actor=w.steward, dataset=w.roads,
                                           spec=ReleaseSpec(data_class="open").to_dict())
    w.release = release_actions.start_release(actor=w.steward, corpus=w.corpus, policy=w.policy)
    if on_worker:
        wait_for(lambda: w.release.refresh_from_db() or w.release.status != "building", timeout=120,
                 what="the worker to build the release")
    else:
        build_release_task(str(w.release.task_id), w.release.pk)
        w.release.refresh_from_db()
    return w


@pytest.fixture
def release_world(world):
    return add_release(world)


def tamper(*statements):
    """Run SQL as a database superuser would, with the append-only triggers out of the way."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS lineage_event_no_update")
            cursor.execute("DROP TRIGGER IF EXISTS lineage_event_no_delete")
        for sql, params in statements:
            cursor.execute(sql, params)


def api_client(user=None, language="en"):
    """An API client, logged in as `user` by token, asking for messages in `language`."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
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


def follow_task(client, task_id, timeout: float = 120):
    """Poll a task through the API, as a page does, until it has finished."""

    def finished():
        data = client.get(f"/api/tasks/{task_id}/").json()
        return data if data["status"] in {"succeeded", "failed"} else None

    return wait_for(finished, timeout=timeout, interval=0.3, what=f"task {task_id} to finish")


def worker_env() -> dict:
    """The environment of a worker process on the test database and broker."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "platform"), str(REPO)])
    # How long SecAgg+ waits for a stage's replies, which the fault tests' killed holders never
    # send. A stage includes each holder's start-up and local training: 30 s was too short
    # under CI's load (replies came after 49 s, every holder was left out, and the run hung).
    env.setdefault("FLOWER_SECAGG_TIMEOUT_S", "75")
    from federation_support import flower_settings  # the session's standing SuperLink (started when asked)

    env.update(flower_settings())
    return env


def start_worker(queues: list[str], name: str, log_path: Path, env: dict | None = None, *,
                 wait: bool = True) -> subprocess.Popen:
    """A real `celery worker` process consuming `queues` as node `name`, once it answers a ping
    (or at once, without `wait`: then `await_worker`)."""
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "miliao", "worker", "--queues", ",".join(queues),
                "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel=INFO", "--hostname", name,
            ],
            cwd=REPO, env=env or worker_env(), stdout=log, stderr=subprocess.STDOUT,
        )
    proc.node_name, proc.log_path = name, log_path
    return await_worker(proc) if wait else proc


def await_worker(proc: subprocess.Popen) -> subprocess.Popen:
    from miliao.celery import app

    name, log_path = proc.node_name, proc.log_path
    wait_for(
        lambda: proc.poll() is not None or app.control.ping(destination=[name], timeout=0.5),
        timeout=60,
        what=f"the Celery worker {name} to answer a ping",
    )
    if proc.poll() is not None:
        raise RuntimeError(f"celery worker {name} exited: {log_path.read_text()[-3000:]}")
    return proc


def stop_worker(proc: subprocess.Popen, *, asked: bool = False) -> None:
    """Stop a worker (`asked`: it was already sent SIGTERM), killing it after 15 s."""
    if not asked:
        proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# The session's workers' logs, once they run: a test that timed out waiting for a job quotes
# the end of the jobs worker's log, for a run nobody watched (CI).
WORKER_LOGS: dict[str, Path] = {}


def worker_log_tail(queue: str = "jobs", chars: int = 4000) -> str:
    path = WORKER_LOGS.get(queue)
    return path.read_text(errors="replace")[-chars:] if path and path.exists() else "(no session worker)"


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """Real `celery worker` processes on the test database, one per queue as in production:
    `jobs` (sandbox jobs, challenge scoring) and `platform` + `ledger` (the rest), so a long
    job never holds up the platform's own work."""
    from django.conf import settings

    if settings.EMBEDDED_BROKER:
        pytest.skip("needs CELERY_BROKER_URL=redis://… (make test starts Redis)")
    logs = tmp_path_factory.mktemp("celery")
    host = socket.gethostname()
    workers = []
    try:
        for queues, role in (([settings.JOBS_QUEUE], "jobs"),
                             ([settings.PLATFORM_QUEUE, settings.LEDGER_QUEUE], "platform")):
            name = f"test-{role}-{os.getpid()}@{host}"
            workers.append((name, start_worker(queues, name, logs / f"{role}.log", wait=False)))
        for _, proc in workers:
            await_worker(proc)
        WORKER_LOGS.update(jobs=logs / "jobs.log", platform=logs / "platform.log")
        yield SimpleNamespace(process=workers[1][1], jobs=workers[0][1], platform=workers[1][1],
                              names=[name for name, _ in workers], log_path=logs / "platform.log")
    finally:
        for _, proc in workers:  # both asked to stop first, so their shutdowns overlap
            proc.terminate()
        for _, proc in workers:
            stop_worker(proc, asked=True)


# --- the chain (contract tests without Django; the platform's own tests use settings) ---


@pytest.fixture(scope="session")
def anvil_url():
    """CHAIN_RPC_URL when it names a node (make test starts anvil), or an anvil for the session."""
    url = os.environ.get("CHAIN_RPC_URL", "")
    if url.startswith(("http://", "https://")):
        yield url
        return
    from ledger.devnode import Anvil

    with Anvil() as node:
        yield node.url


@pytest.fixture(scope="session")
def chain(anvil_url):
    """A real JSON-RPC node: anvil."""
    from ledger_chain_support import rpc_chain

    return rpc_chain(anvil_url)


@pytest.fixture
def owner(chain):
    return chain.new_account()


@pytest.fixture
def registry(chain, owner):
    """A registry freshly deployed by ``owner``, who is its owner and first writer."""
    contract, _ = chain.deploy_registry(owner)
    return contract


# --- the browser ----------------------------------------------------------------
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# around it are plain synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("MILIAO_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(executable):
        pytest.skip(f"no Chromium at {executable} (make test installs Debian's chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page, base_url, username):
    """Log in through the login form, as a person would."""
    page.goto(f"{base_url}/")
    assert "/accounts/login/" in page.url  # anonymous visitors are sent to log in
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_selector("[data-testid=dashboard-title]")



CAPABILITIES = {"foundation", "release", "access", "ledger", "sandbox", "innovation", "deploy"}


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


@contextmanager
def failing_commit(event_type: str):
    """The next commit that holds an event of `event_type` fails (PostgreSQL: a deferred
    constraint trigger on the event log, checked at COMMIT), as a lost connection or a full
    disk would make it fail after the action's work was done."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE OR REPLACE FUNCTION miliao_test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'the commit fails (test): %', NEW.event_type; END $$")
        cursor.execute("CREATE CONSTRAINT TRIGGER miliao_test_refuse_commit AFTER INSERT ON provenance_lineageevent "
                       "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                       f"WHEN (NEW.event_type = '{event_type}') EXECUTE FUNCTION miliao_test_refuse_commit()")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER miliao_test_refuse_commit ON provenance_lineageevent")


# The session's standing federation, one for the whole session: a fixture imported into a test
# module is that module's own (each module would start its own SuperLink on the same port).
from federation_support import standing_federation  # noqa: E402, F401
