"""A submission is stored once its transaction has committed: it is written and checked in a
staging folder first (no lock held while weights load), and renamed into place by the
commit. A commit that fails (a deferred constraint on PostgreSQL) stores nothing and queues
no scoring; the normal path stores it and scores it."""
from __future__ import annotations

import pytest
from django.db import DatabaseError

from conftest import failing_commit
from innovation_support import follow_submission, open_challenge, register

pytestmark = [pytest.mark.innovation, pytest.mark.django_db(transaction=True)]

CODE = b"import sys\nprint(sys.argv)\n"


def test_a_failed_commit_stores_no_submission_and_the_next_one_is_stored_and_scored(live_world, celery_worker):
    from innovation import actions
    from innovation.models import Challenge, Submission
    from progress.models import TaskProgress

    w = live_world
    challenge = Challenge.objects.get(slug=open_challenge(w, rooms=1500)["slug"])
    register(w.researcher, challenge.slug, "同济")
    folder = actions.submissions_dir()
    # The folder outlives the test database: earlier tests' submissions may be in it.
    before = {p for p in folder.rglob("*") if p.is_file()}

    with failing_commit("innovation.submitted"), pytest.raises(DatabaseError, match="the commit fails"):
        actions.submit(actor=w.researcher, challenge=challenge, kind="code", content=CODE)
    assert not Submission.objects.exists() and not TaskProgress.objects.filter(kind="innovation.score").exists()
    assert {p for p in folder.rglob("*") if p.is_file()} == before  # neither stored nor left staged

    submission = actions.submit(actor=w.researcher, challenge=challenge, kind="code", content=CODE)
    stored = sorted({p for p in folder.rglob("*") if p.is_file()} - before)
    assert stored == [folder / str(submission.pk) / "predict.py"] and stored[0].read_bytes() == CODE
    assert submission.path == str(stored[0].relative_to(folder.parent.parent))
    # The stored script runs (it writes no predictions, so it fails with that reason).
    assert follow_submission(w.researcher, submission.pk)["status"] in {"scored", "failed"}
