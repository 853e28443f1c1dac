"""`manage.py verify_lineage <artifact>`: check an artifact's whole lineage against the chain."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from provenance.lineage import UnknownArtifact, verify_lineage


class Command(BaseCommand):
    help = (
        "Recompute every event in an artifact's lineage (e.g. releases.release:7), check it against "
        "its neighbours in the hash chain and its Merkle proof against the root on the chain; "
        "exit 1 naming each edited, deleted, inserted or reordered event and any root not on the chain."
    )

    def add_arguments(self, parser):
        parser.add_argument("artifact", help="the artifact's subject, e.g. releases.release:7")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, artifact: str, as_json: bool = False, **options):
        try:
            report = verify_lineage(artifact)
        except UnknownArtifact as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        else:
            for root in report.roots:
                mark = "on chain" if root["on_chain"] else "NOT ON CHAIN"
                self.stdout.write(
                    f"root {root['root'][:16]}… events {root['first_seq']}–{root['last_seq']}: {mark} "
                    f"(tx {root['tx_hash'] or '?'}, block {root['block_number']})"
                )
            for finding in report.findings:
                self.stdout.write(self.style.ERROR(f"event {finding.seq}: {finding.kind}: {finding.message}"))
            if report.unanchored:
                self.stdout.write(f"not anchored yet: events {', '.join(map(str, report.unanchored))}")
        if report.chain_error:
            raise CommandError(f"could not check the chain: {report.chain_error}")
        if report.findings:
            named = "; ".join(f"event {f.seq}: {f.kind}" for f in report.findings)
            raise CommandError(f"lineage of {artifact} FAILED: {len(report.findings)} problem(s): {named}")
        if not as_json:
            self.stdout.write(
                self.style.SUCCESS(
                    f"lineage of {artifact} OK: {report.events} events, {report.anchored} proved on chain, "
                    f"{len(report.unanchored)} awaiting anchoring ({report.elapsed_ms} ms)"
                )
            )
