"""`manage.py export_prov <artifact>`: the lineage as W3C PROV-JSON, for outside verifiers."""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from provenance.lineage import UnknownArtifact, prov_document


class Command(BaseCommand):
    help = "Write an artifact's lineage as W3C PROV-JSON; check it with `python ledger/verify_prov.py FILE --rpc URL`."

    def add_arguments(self, parser):
        parser.add_argument("artifact", help="the artifact's subject, e.g. releases.release:7")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args, artifact: str, output: str | None = None, **options):
        try:
            doc = prov_document(artifact)
        except UnknownArtifact as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(doc, ensure_ascii=False, indent=2)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {len(doc['activity'])} events to {output}")
        else:
            self.stdout.write(text)
