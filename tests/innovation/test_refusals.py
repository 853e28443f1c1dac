"""What a challenge refuses, each with a clear reason and nothing stored: a submission over
the team's daily limit, after the deadline, from someone in no registered team or from the
bureau that holds the hidden set, too large, or malformed; a challenge whose hidden test set
is not compute-only, or whose timeline runs backwards; reuse a licence forbids."""
from __future__ import annotations

import datetime
import io

import pytest

from conftest import api_client
from innovation_support import open_challenge, register, submit_weights, trained_weights

pytestmark = [pytest.mark.innovation, pytest.mark.django_db]


def _counts():
    from innovation.models import Submission
    from provenance.models import LineageEvent

    return Submission.objects.count(), LineageEvent.objects.count()


@pytest.fixture
def challenge(world):
    challenge = open_challenge(world, slug="daily", daily_limit=1)
    register(world.researcher, challenge["slug"], "同济")
    return challenge


@pytest.fixture
def weights(world):
    """A model for the challenge's features (the hidden corpus's neighbourhoods, as in spec.json)."""
    from innovation.models import Challenge

    if not hasattr(world, "rooms_corpus"):
        open_challenge(world, slug="probe")
    return trained_weights(epochs=1, rooms=2000, neighbourhoods=Challenge.objects.first().spec["neighbourhoods"])


def test_the_daily_limit_refuses_the_next_submission_of_the_day(world, challenge, weights):
    first = submit_weights(world.researcher, challenge["slug"], weights)
    assert first.status_code == 201, first.content
    before = _counts()
    second = submit_weights(world.researcher, challenge["slug"], weights)
    assert second.status_code == 409 and "its 1 submissions of today" in second.json()["detail"]
    assert _counts() == before


def test_a_submission_after_the_deadline_is_refused(world, weights):
    open_challenge(world, slug="late", opens=-7200, final=-60, closes=3600)
    register(world.researcher, "late", "同济")
    before = _counts()
    response = submit_weights(world.researcher, "late", weights)
    assert response.status_code == 409 and "submission deadline of late passed" in response.json()["detail"]
    assert _counts() == before


def test_someone_in_no_registered_team_is_refused(world, challenge, weights):
    before = _counts()
    response = submit_weights(world.applicant, challenge["slug"], weights)
    assert response.status_code == 403 and "no team registered" in response.json()["detail"]
    bureau = submit_weights(world.bureau_applicant, challenge["slug"], weights)
    assert bureau.status_code == 403 and "holds its hidden test set" in bureau.json()["detail"]
    assert _counts() == before


def test_too_large_and_malformed_submissions_are_refused_naming_the_field(world, challenge, weights):
    import torch

    slug = challenge["slug"]
    wrong_shape = io.BytesIO()
    torch.save({"0.weight": torch.zeros(8, 3), "0.bias": torch.zeros(8)}, wrong_shape)
    pickled = io.BytesIO()  # a pickle of more than tensors: torch's safe loader refuses it
    torch.save({"when": datetime.date(2026, 12, 6)}, pickled)
    before = _counts()
    cases = [
        (b"\x00" * 2_000_001, "larger than 2000000 bytes, the most this challenge takes"),
        (b"not a checkpoint at all", "not a PyTorch state_dict"),
        (pickled.getvalue(), "not a PyTorch state_dict"),
        (wrong_shape.getvalue(), "do not fit the task's model"),
    ]
    for content, message in cases:
        response = submit_weights(world.researcher, slug, content)
        assert response.status_code == 400 and message in response.json()["file"][0], response.content
    broken = api_client(world.researcher).post("/api/submissions/", {"challenge": slug, "kind": "code",
                                                                     "code": "def predict(:\n"}, format="json")
    assert broken.status_code == 400 and "does not compile" in broken.json()["code"][0]
    empty = api_client(world.researcher).post("/api/submissions/", {"challenge": slug, "kind": "code", "code": ""},
                                              format="json")
    assert empty.status_code == 400 and "code" in empty.json()
    assert _counts() == before


def test_a_challenge_needs_a_compute_only_hidden_set_and_a_forward_timeline(world):
    from conftest import add_release

    from innovation_support import times

    w = add_release(world)  # an open corpus, which must not be a hidden test set
    open_challenge(w)  # the scenario and a valid challenge
    steward = api_client(w.steward)
    body = {"scenario": "building-use", "slug": "c2", "title": "x", "task": "room-use", "training_dataset": "huangpu-roads",
            "rules": "r", "daily_limit": 3}
    open_set = steward.post("/api/challenges/", {**body, "hidden_corpus": w.corpus.pk, **times()}, format="json")
    assert open_set.status_code == 400 and "must be compute-only" in open_set.json()["hidden_corpus"][0]
    backwards = steward.post("/api/challenges/", {**body, "hidden_corpus": w.rooms_corpus.pk,
                                                  **times(opens=600, final=60, closes=1200)}, format="json")
    assert backwards.status_code == 400 and "final_at" in backwards.json()
    unknown = steward.post("/api/challenges/", {**body, "slug": "c3", "task": "parking", "hidden_corpus": w.rooms_corpus.pk,
                                                **times()}, format="json")
    assert unknown.status_code == 400 and "task" in unknown.json()
    other = api_client(w.other_steward).post("/api/challenges/", {**body, "slug": "c4", "hidden_corpus": w.rooms_corpus.pk,
                                                                   **times()}, format="json")
    assert other.status_code == 403


def test_reuse_is_refused_where_the_licence_forbids_it(world, weights):
    from access import actions as access_actions
    from innovation import actions
    from innovation.models import Challenge, Submission
    from jobs import actions as job_actions
    from miliao.errors import Refused
    from sandbox_support import approve_lab

    w = world
    challenge = open_challenge(w)
    register(w.researcher, challenge["slug"], "同济")
    shared = []
    for _ in range(2):
        submission = Submission.objects.get(pk=submit_weights(w.researcher, challenge["slug"], weights).json()["id"])
        actions.record_score(submission_id=submission.pk, score=0.7)  # as the scoring task records it
        shared.append(submission)
    actions.close_challenge(actor=w.steward, challenge=Challenge.objects.get(slug=challenge["slug"]))
    actions.record_private_board(challenge_id=shared[0].challenge_id, scores={s.pk: 0.69 for s in shared})
    no_derivatives = actions.share_result(actor=w.researcher, submission=shared[0], title="nd", summary="s",
                                          licence="CC-BY-ND-4.0")
    non_commercial = actions.share_result(actor=w.researcher, submission=shared[1], title="nc", summary="s",
                                          licence="CC-BY-NC-4.0")
    approve_lab(w)
    params = {"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5}
    with pytest.raises(Refused, match="no derivatives"):
        job_actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="ft", task="room-use",
                               params={**params, "base_model": no_derivatives.pk})
    application = access_actions.submit_application(actor=w.applicant, dataset=w.rooms, purpose="a room-use product for our customers")
    access_actions.approve_application(actor=w.steward, application=application, epsilon="5", delta="1e-5")
    refused = api_client(w.applicant).post("/api/jobs/", {
        "dataset": "district-rooms", "kind": "centralized", "title": "ft", "task": "room-use",
        "params": {**params, "base_model": non_commercial.pk}}, format="json")
    assert refused.status_code == 403 and "not for commercial use by a startup" in refused.json()["detail"]
