"""The auditor traces a release in the browser: graph, anchors, and the Verify button."""
from __future__ import annotations

import pytest

from conftest import add_release, log_in, tamper

pytestmark = [pytest.mark.ledger, pytest.mark.browser]


def test_auditor_traces_a_release_and_verifies_it_against_the_chain(live_server, live_world, celery_worker, page):
    from provenance.anchoring import anchor_pending

    w = add_release(live_world, on_worker=True)
    assert w.release.status == "built"
    assert anchor_pending(force=True).error == ""
    log_in(page, live_server.url, "auditor")
    page.goto(f"{live_server.url}/releases/{w.release.pk}/")
    page.click("[data-testid=trace]")
    assert page.inner_text("[data-testid=lineage-subject]") == f"发布 #{w.release.pk}"
    nodes = page.locator("[data-testid=lineage-node]")
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.subject)")) == sorted(
        [f"catalog.dataset:{w.roads.pk}", f"corpora.corpusversion:{w.corpus.pk}",
         f"releases.releasepolicy:{w.policy.pk}", f"releases.release:{w.release.pk}"]
    )
    assert "awaiting anchoring" not in page.inner_text("[data-testid=lineage-events]")
    assert page.inner_text("[data-testid=anchoring-lag]")  # the lag is shown

    page.click("[data-testid=verify-lineage]")
    verdict = page.inner_text("[data-testid=lineage-verdict]")
    assert "核验通过" in verdict and "5 个事件" in verdict

    # Someone edits the release's build record in the database; the same button names it.
    from provenance.models import LineageEvent

    built = LineageEvent.objects.get(event_type="releases.release_built", subject=f"releases.release:{w.release.pk}")
    from django.db import transaction

    with transaction.atomic():
        tamper(("UPDATE provenance_lineageevent SET actor = 'user:1:mallory' WHERE seq = %s", [built.seq]))
    page.click("[data-testid=verify-lineage]")
    assert page.inner_text("[data-testid=lineage-verdict]") == "核验未通过"
    findings = page.inner_text("[data-testid=lineage-findings]")
    assert f"#{built.seq} edited" in findings and f"#{built.seq} proof_mismatch" in findings


def test_an_applicant_cannot_open_the_lineage_page(live_server, live_world, page):
    log_in(page, live_server.url, "applicant")
    response = page.goto(f"{live_server.url}/lineage/?subject=catalog.dataset:{live_world.roads.pk}")
    assert response.status == 403
