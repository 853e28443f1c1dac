"""`manage.py anchor_events`: run one anchoring pass now (the beat task does it on a timer)."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from provenance.anchoring import anchor_pending, ledger_status


class Command(BaseCommand):
    help = "Batch the unanchored events into a Merkle tree and anchor its root on the chain now."

    def handle(self, *args, **options):
        run = anchor_pending(force=True)
        status = ledger_status()
        self.stdout.write(json.dumps({"run": run.__dict__, "status": status.to_dict()}, indent=2))
        if run.error:
            raise CommandError(f"anchoring failed: {run.error}")
        if run.pending is not None:
            raise CommandError("an anchor transaction is still pending; run again to settle it")
