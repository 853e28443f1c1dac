"""`manage.py verify_events`: recompute the event chain and name the first tampered event."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from provenance.verification import verify_event_log


class Command(BaseCommand):
    help = "Recompute the provenance event chain; exit 1 naming the first edited, deleted, inserted or reordered event."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, as_json: bool = False, **options):
        report = verify_event_log()
        if as_json:
            self.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        if report.tamper is not None:
            raise CommandError(f"event log TAMPERED: {report.tamper.message}")
        if not as_json:
            self.stdout.write(
                self.style.SUCCESS(
                    f"event log OK: {report.checked} events, head #{report.head_seq} {report.head_hash}"
                )
            )

