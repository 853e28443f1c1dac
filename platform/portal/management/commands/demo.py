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
        if no_serve:
            return
        self.stdout.write(f"Portal: http://127.0.0.1:{port}/   API docs: http://127.0.0.1:{port}/api/docs/")
        # With the embedded memory broker, tasks are consumed by a worker thread in this
        # process; with Redis, run `celery -A miliao worker` beside it instead.
        worker = nullcontext()
        if settings.EMBEDDED_BROKER:
            from celery.contrib.testing.worker import start_worker

            worker = start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING")
        with worker:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)
