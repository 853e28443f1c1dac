"""A challenge whose end has passed closes without a steward: Celery beat's task starts the
close on the worker, the private board ranks the finals, and the event says the schedule did
it. A challenge not yet due stays open, one being closed is not closed twice, and one whose
close failed waits for its steward."""
from __future__ import annotations

import datetime
import json

import pytest

from conftest import api_client, follow_task, wait_for
from innovation_support import follow_submission, open_challenge, register, submit_weights, trained_weights

pytestmark = pytest.mark.innovation


def test_beat_closes_the_challenges_whose_end_has_passed_once(live_world, celery_worker):
    from django.utils import timezone

    from innovation import actions
    from innovation.models import Challenge
    from innovation.tasks import close_due_challenges_task
    from provenance.models import LineageEvent

    w = live_world
    open_challenge(w, slug="due", rooms=2000)
    open_challenge(w, slug="later")
    open_challenge(w, slug="broken")
    register(w.researcher, "due", "同济")
    weights = trained_weights(epochs=1, rooms=2000, neighbourhoods=Challenge.objects.get(slug="due").spec["neighbourhoods"])
    submitted = submit_weights(w.researcher, "due", weights)
    assert submitted.status_code == 201, submitted.content
    assert follow_submission(w.researcher, submitted.json()["id"])["status"] == "scored"

    # Time passes: the submission deadline and the end of "due" and "broken" are behind us.
    now = timezone.now()
    Challenge.objects.filter(slug__in=["due", "broken"]).update(final_at=now - datetime.timedelta(minutes=2),
                                                                closes_at=now - datetime.timedelta(minutes=1))
    # "broken" was closed once before and its scoring crashed: its steward must look first.
    actions.fail_close(challenge_id=Challenge.objects.get(slug="broken").pk, reason="RuntimeError: the worker died")

    close_due_challenges_task.delay()  # what beat sends every CHALLENGE_CLOSE_CHECK_S

    def board():
        response = api_client(w.applicant).get("/api/challenges/due/private-board/")
        return response.json() if response.status_code == 200 else None

    final = wait_for(board, timeout=300, interval=1, what="the private board of the due challenge")
    assert [(row["rank"], row["team"]) for row in final["rows"]] == [(1, "同济")]
    assert final["rows"][0]["score"] > 0.3
    closing = LineageEvent.objects.get(subject=f"innovation.challenge:{Challenge.objects.get(slug='due').pk}",
                                       event_type="innovation.challenge_closing")
    assert closing.actor == "system" and json.loads(closing.payload)["by"] == "schedule"

    # Nothing else was due; a second run starts nothing.
    assert api_client(w.applicant).get("/api/challenges/later/").json()["phase"] == "open"
    assert api_client(w.applicant).get("/api/challenges/broken/").json()["phase"] == "final"
    assert Challenge.objects.get(slug="broken").close_task_id is None
    assert actions.close_due_challenges() == []
    assert LineageEvent.objects.filter(event_type="innovation.challenge_closing").count() == 1

    # The steward still closes the failed one by hand.
    by_hand = api_client(w.steward).post("/api/challenges/broken/close/")
    assert by_hand.status_code == 202, by_hand.content
    assert follow_task(api_client(w.steward), by_hand.json()["progress"]["id"], timeout=120)["status"] == "succeeded"
    assert api_client(w.applicant).get("/api/challenges/broken/").json()["phase"] == "closed"

    # The board's ranks and the failed close are state; a database from before they were
    # (migration innovation 0002) takes them from the events that recorded them.
    import importlib

    from django.apps import apps

    from innovation import queries
    from innovation.models import Submission

    due, broken = Challenge.objects.get(slug="due"), Challenge.objects.get(slug="broken")
    assert broken.close_failed_at is not None and due.close_failed_at is None
    ranked = {s.pk: Submission.objects.get(pk=s.pk).private_rank for s in queries.finals(due)}
    assert list(ranked.values()) == [1]
    Submission.objects.filter(pk__in=ranked).update(private_rank=None)
    Challenge.objects.filter(pk=broken.pk).update(close_failed_at=None)
    importlib.import_module("innovation.migrations.0002_stored_board_and_close_failure").from_events(apps, None)
    assert {s.pk: s.private_rank for s in Submission.objects.filter(pk__in=ranked)} == ranked
    assert Challenge.objects.get(pk=broken.pk).close_failed_at == LineageEvent.objects.filter(
        subject=f"innovation.challenge:{broken.pk}", event_type="innovation.challenge_close_failed").latest("seq").recorded_at
