"""`manage.py demo`: migrate, seed the demo district and serve the portal with a worker."""
from __future__ import annotations

from contextlib import nullcontext

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from miliao.celery import app as celery_app
from portal.seed import seed_demo


class Command(BaseCommand):
    help = "Seed the demo district and serve the portal on 127.0.0.1 (embedded defaults)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="seed and exit")

    def handle(self, *args, port: int, no_serve: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        logins = seed_demo(settings.STATE_DIR)
        self.stdout.write(self.style.SUCCESS("Miliao demo is seeded. Logins:"))
        for login in logins:
            self.stdout.write(f"  {login.role:<12} {login.username:<11} {login.password}  ({login.organisation})")
        self._sandbox()
        self._anchor_and_verify()
        if no_serve:
            return
        self.stdout.write(f"Portal: http://127.0.0.1:{port}/   API docs: http://127.0.0.1:{port}/api/docs/")
        # With the embedded memory broker, tasks are consumed by a worker thread in this
        # process; with Redis, run `celery -A miliao worker` beside it instead.
        worker = nullcontext()
        if settings.EMBEDDED_BROKER:
            from celery.beat import EmbeddedService
            from celery.contrib.testing.worker import start_worker

            worker = start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING")
            # Celery beat in a thread too, so new events are anchored every ANCHOR_INTERVAL_S.
            beat = EmbeddedService(
                celery_app, thread=True, schedule_filename=str(settings.STATE_DIR / "celerybeat-schedule")
            )
            beat.start()
        with worker:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)

    def _sandbox(self) -> None:
        from jobs.models import Job, SyftDataset

        for job in Job.objects.filter(kind="federated").order_by("pk"):
            nodes = job.outcome.get("nodes_started", 0)
            metric = ", ".join(f"{k} {v:.3f}" for k, v in job.metrics.items() if k in ("accuracy", "baseline"))
            self.stdout.write(f"Federated job #{job.pk} ({nodes} SuperNodes, SecAgg+, DP-SGD): {job.status}"
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
