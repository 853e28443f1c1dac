"""`manage.py demo`: migrate, seed the demo district and serve the portal, with its Celery
workers and beat as processes of their own.

Processes (the production layout of README.md, scaled down):

- a `jobs` worker (sandbox jobs, challenge scoring) and a `platform` worker (releases,
  imports, alerts, the beat's checks), each a `celery worker` process;
- `celery beat`, one process;
- a `ledger` worker (anchoring, event-log verification), a `celery worker` process of its own
  so that anchoring never waits behind a release build;
- the web server: gunicorn with DEBUG off (miliao/gunicorn_conf.py, as in production),
  static files collected and served by whitenoise;
- the chain: an anvil node (ledger/devnode.py) on CHAIN_RPC_URL's loopback port
  (127.0.0.1:8545 by default), its chain kept in STATE_DIR/chain/anvil-state.json so that it
  survives restarts. A node already answering there is used as it is;
- the federation (portal.demo_federation): the standing SuperLink on FLOWER_SUPERLINK, its state
  in FLOWER_STATE_DIR, and three district nodes, each a process with its own state folder
  beside the platform's state (var-districts/), holding its own district's rows; the federated job runs on them;
- this process, which seeds and then watches the others.

They share the broker: by default kombu's filesystem transport under STATE_DIR/broker.
Stopping the demo (Ctrl-C, SIGTERM) stops them; each also dies with this process.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.seed import seed_demo

STOP_TIMEOUT_S = 15
CHAIN_STATE_INTERVAL_S = 2  # how often the demo's anvil writes its chain to disk (a kill loses less)
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _die_with_demo(parent: int):
    """In each child before exec: SIGTERM it when the demo process dies, however it dies."""

    def arm() -> None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return arm


class Command(BaseCommand):
    help = "Seed the demo district and serve the portal on 127.0.0.1 (development defaults, an anvil chain node)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="seed and exit")

    def handle(self, *args, port: int, no_serve: bool, **options):
        with self._chain_node(), self._federation() as federation:
            self._run(port, no_serve, federation)

    @contextlib.contextmanager
    def _federation(self):
        """The standing SuperLink (unless one answers at FLOWER_SUPERLINK) and the three
        district nodes; stopped on the way out."""
        from portal.demo_federation import DemoFederation

        logs = settings.STATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        federation = DemoFederation(logs)
        try:
            federation.start(preexec=_die_with_demo(os.getpid()))
            yield federation
        finally:
            federation.stop()

    def _run(self, port: int, no_serve: bool, federation) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        logins = seed_demo(settings.STATE_DIR, federation=federation)  # starts the nodes once registered
        self.stdout.write(federation.describe())
        self.stdout.write(self.style.SUCCESS("Miliao demo is seeded. Logins:"))
        for login in logins:
            self.stdout.write(f"  {login.role:<12} {login.username:<11} {login.password}  ({login.organisation})")
        self._sandbox()
        self._anchor_and_verify()
        if no_serve:
            return
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            raise CommandError("CELERY_BROKER_URL=memory:// lives inside one process, and the demo's workers are "
                               "processes of their own: unset it (the filesystem broker under MILIAO_STATE_DIR) "
                               "or point it at Redis")
        # SIGTERM stops the demo as Ctrl-C does, so the workers and beat are stopped too. Ctrl-C
        # (SIGINT) is taken back too: a process started in the background by a shell, or by a
        # parent that ignores SIGINT, inherits SIGINT ignored, and would then never stop on it.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        host = socket.gethostname()
        call_command("collectstatic", interactive=False, verbosity=0)
        with self._processes(host, port) as children:
            self.stdout.write("Workers: " + ", ".join(f"{name} (pid {proc.pid})" for name, proc in children)
                              + f"; logs in {settings.STATE_DIR / 'logs'}.")
            self.stdout.write(f"Portal: http://127.0.0.1:{port}/   API docs: http://127.0.0.1:{port}/api/docs/")
            self.stdout.flush()
            web = dict(children)["web server"]
            try:
                web.wait()
            except KeyboardInterrupt:
                return
            if web.returncode:  # 0: it was stopped, with the demo (Ctrl-C reaches the whole process group)
                raise CommandError(f"the web server stopped (exit {web.returncode}); see {settings.STATE_DIR / 'logs'}")

    @contextlib.contextmanager
    def _chain_node(self):
        """anvil on CHAIN_RPC_URL's loopback port with its chain under STATE_DIR, unless a node
        already answers there (a running demo's, or the user's own); stopped on the way out,
        which writes its chain to the state file."""
        from ledger.devnode import Anvil, AnvilError, chain_id_at

        url = settings.CHAIN_RPC_URL
        chain_id = chain_id_at(url)
        if chain_id is not None:
            self.stdout.write(f"Chain: the node at {url} (chain id {chain_id}), already running.")
            yield
            return
        parsed = urlparse(url)
        if parsed.scheme != "http" or parsed.hostname not in {"127.0.0.1", "localhost"} or not parsed.port:
            raise CommandError(f"No chain node answers at CHAIN_RPC_URL={url}, and the demo starts one only at "
                               "http://127.0.0.1:<port>: start that node, or unset CHAIN_RPC_URL")
        old = settings.STATE_DIR / "chain" / "embedded.sqlite3"
        if old.exists():
            raise CommandError(f"{settings.STATE_DIR} holds a demo anchored on the embedded chain ({old}), which "
                               "is gone: move that folder away and run the demo again to seed a fresh one")
        state = settings.CHAIN_DEV_STATE
        node = Anvil()
        try:
            node.start(port=parsed.port, state_path=state, state_interval=CHAIN_STATE_INTERVAL_S)
        except AnvilError as exc:
            raise CommandError(f"The demo's chain node (anvil) did not start on {url}: {exc}") from exc
        self.stdout.write(f"Chain: anvil at {url} (chain id {node.chain_id}, pid {node.pid}), "
                          f"its chain kept in {state}.")
        self.stdout.flush()
        try:
            yield
        finally:
            node.close()

    @contextlib.contextmanager
    def _processes(self, host: str, port: int):
        """The `jobs`, `platform` and `ledger` workers, beat and the web server, as processes;
        stopped on the way out."""
        logs = settings.STATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        celery = [sys.executable, "-m", "celery", "-A", "miliao"]

        def worker(queue: str, name: str) -> list[str]:
            return [*celery, "worker", "--queues", queue, "--hostname", f"{name}@{host}", "--pool=solo",
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]

        commands = {
            "jobs worker": worker(settings.JOBS_QUEUE, "jobs"),
            "platform worker": worker(settings.PLATFORM_QUEUE, "platform"),
            "ledger worker": worker(settings.LEDGER_QUEUE, "ledger"),
            "beat": [*celery, "beat", "--schedule", str(settings.STATE_DIR / "celerybeat-schedule"),
                     "--loglevel=INFO"],
            "web server": [sys.executable, "-m", "gunicorn", "--config", "python:miliao.gunicorn_conf"],
        }
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(settings.PLATFORM_DIR), str(settings.REPO_DIR)])}
        web_env = {**env, "DJANGO_DEBUG": "0", "MILIAO_WEB_BIND": f"127.0.0.1:{port}",
                   "MILIAO_WEB_WORKERS": os.environ.get("MILIAO_WEB_WORKERS", "2")}
        children = []
        try:
            for name, argv in commands.items():
                log = open(logs / f"{name.replace(' ', '-')}.log", "ab")
                children.append((name, subprocess.Popen(
                    argv, cwd=settings.REPO_DIR, env=web_env if name == "web server" else env,
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, preexec_fn=_die_with_demo(os.getpid()))))
                log.close()
            yield children
        finally:
            self._stop(children)

    def _stop(self, children) -> None:
        for _, proc in children:
            if proc.poll() is None:
                proc.terminate()  # a warm shutdown: a worker finishes the message it holds
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.stdout.write(f"{name} (pid {proc.pid}) did not stop within {STOP_TIMEOUT_S} s; killed it")
        if children:
            self.stdout.write("Stopped: " + ", ".join(f"{name} (pid {proc.pid})" for name, proc in children))
            self.stdout.flush()

    def _sandbox(self) -> None:
        from jobs.models import Job, SyftDataset

        for job in Job.objects.filter(kind="federated").order_by("pk"):
            nodes = job.outcome.get("nodes_started", 0)
            metric = ", ".join(f"{k} {v:.3f}" for k, v in job.metrics.items()
                               if k in ("accuracy", "baseline") and v is not None)
            self.stdout.write(f"Federated job #{job.pk} ({nodes} district nodes, SecAgg+, DP-SGD): {job.status}"
                              f"{f' ({job.status_reason})' if job.status_reason else ''}; {metric}; "
                              f"ε spent {job.epsilon_spent}")
        for published in SyftDataset.objects.all():
            self.stdout.write(f"Code-to-data: {published.name} v{published.corpus.version} published as a PySyft "
                              f"dataset ({published.private_rows} private rows, {published.mock_rows} mock rows)")

    def _anchor_and_verify(self) -> None:
        """Anchor the seeded events on the chain and verify each published release's lineage."""
        from provenance.anchoring import anchor_pending, ledger_status
        from provenance.lineage import verify_lineage
        from releases.models import Release, ReleaseStatus

        run = anchor_pending(force=True)
        status = ledger_status()
        if run.error:
            self.stdout.write(self.style.ERROR(f"Anchoring failed ({status.chain}): {run.error}"))
            return
        self.stdout.write(
            f"Provenance: events 1–{status.anchored_seq} anchored on the chain ({status.chain}), "
            f"{status.anchors} anchor transaction(s)."
        )
        for release in Release.objects.filter(status=ReleaseStatus.PUBLISHED).order_by("pk"):
            subject = f"releases.release:{release.pk}"
            report = verify_lineage(subject)
            verdict = "verified" if report.ok else f"FAILED: {[f.message for f in report.findings] or report.chain_error}"
            self.stdout.write(
                f"Lineage of {subject}: {report.events} events, {report.anchored} proved on chain, {verdict}. "
                f"Check it yourself: manage.py verify_lineage {subject}"
            )
