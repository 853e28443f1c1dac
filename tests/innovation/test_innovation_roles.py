"""Every crowd-innovation endpoint and page against every role. The scenario and challenge
are the steward's bureau's; team 同济 is the researcher's (tongji-lab); the applicant
(mili-tech) is in no team. A refused request writes nothing."""
from __future__ import annotations

import pytest

from conftest import build_world, per_test, rolled_back_at_the_end
from innovation_support import open_challenge, register
from role_support import assert_answers

pytestmark = [pytest.mark.innovation, pytest.mark.django_db]

ROLES = ["anonymous", "researcher", "applicant", "steward", "other_steward", "data_holder", "auditor", "admin"]
EVERYONE = dict.fromkeys(ROLES, 200) | {"anonymous": 401}
PAGES = dict.fromkeys(ROLES, 200) | {"anonymous": 302}
NOBODY = dict.fromkeys(ROLES, 403) | {"anonymous": 401}
SLUG = "room-use-2026"
CODE = "import sys\nprint(sys.argv)\n"

# (name, method, path, body, expected status per role, status meaning "it was done")
TABLE = [
    ("scenarios", "get", lambda w: "/api/scenarios/", None, EVERYONE, None),
    ("scenario", "get", lambda w: "/api/scenarios/building-use/", None, EVERYONE, None),
    ("scenario-open", "post", lambda w: "/api/scenarios/",
     lambda w: {"slug": "s2", "title": "t", "background": "b", "contact": "c"},
     NOBODY | {"steward": 201, "other_steward": 201}, 201),
    ("scenario-follow", "post", lambda w: "/api/scenarios/building-use/follow/", lambda w: {"kind": "follow"},
     NOBODY | {"researcher": 201, "applicant": 201}, 201),
    ("scenario-deploy", "post", lambda w: "/api/scenarios/building-use/deploy/", lambda w: {"note": "in use"},
     NOBODY | {"steward": 200}, 200),
    ("challenges", "get", lambda w: "/api/challenges/", None, EVERYONE, None),
    ("challenge", "get", lambda w: f"/api/challenges/{SLUG}/", None, EVERYONE, None),
    ("challenge-open", "post", lambda w: "/api/challenges/", lambda w: w.second_challenge,
     NOBODY | {"steward": 201}, 201),
    ("starter-kit", "get", lambda w: f"/api/challenges/{SLUG}/starter-kit/", None, EVERYONE, None),
    ("leaderboard", "get", lambda w: f"/api/challenges/{SLUG}/leaderboard/", None, EVERYONE, None),
    ("close", "post", lambda w: f"/api/challenges/{SLUG}/close/", None, NOBODY | {"steward": 202}, 202),
    ("private-board", "get", lambda w: f"/api/challenges/{SLUG}/private-board/", None, EVERYONE | {
        "researcher": 409, "applicant": 409, "steward": 409, "other_steward": 409, "data_holder": 409,
        "auditor": 409, "admin": 409}, None),
    ("teams", "get", lambda w: f"/api/challenges/{SLUG}/teams/", None, EVERYONE, None),
    ("team", "get", lambda w: f"/api/teams/{w.team['id']}/", None, EVERYONE, None),
    ("team-register", "post", lambda w: f"/api/challenges/{SLUG}/teams/", lambda w: {"name": "新队"},
     NOBODY | {"researcher": 409, "applicant": 201}, 201),
    ("team-invite", "post", lambda w: f"/api/teams/{w.team['id']}/invite/", lambda w: {"username": "fudan"},
     NOBODY | {"researcher": 201}, 201),
    ("invitations", "get", lambda w: "/api/invitations/", None, EVERYONE, None),
    ("invitation-accept", "post", lambda w: f"/api/invitations/{w.invitation.pk}/accept/", None,
     NOBODY | {"researcher": 404, "applicant": 200, "steward": 404, "other_steward": 404, "data_holder": 404,
               "admin": 404}, 200),
    ("invitation-decline", "post", lambda w: f"/api/invitations/{w.invitation.pk}/decline/", None,
     NOBODY | {"researcher": 404, "applicant": 200, "steward": 404, "other_steward": 404, "data_holder": 404,
               "admin": 404}, 200),
    ("submissions", "get", lambda w: "/api/submissions/", None, EVERYONE, None),
    ("submission", "get", lambda w: f"/api/submissions/{w.submission.pk}/", None,
     EVERYONE | {"applicant": 404, "other_steward": 404, "data_holder": 404}, None),
    ("submit", "post", lambda w: "/api/submissions/", lambda w: {"challenge": SLUG, "kind": "code", "code": CODE},
     NOBODY | {"researcher": 201}, 201),
    ("submission-final", "post", lambda w: f"/api/submissions/{w.submission.pk}/final/", None,
     dict(anonymous=401, researcher=200, applicant=404, steward=403, other_steward=404, data_holder=404, auditor=403,
          admin=403), 200),
    ("submission-proof", "get", lambda w: f"/api/submissions/{w.submission.pk}/proof/", None,
     EVERYONE | {"applicant": 404, "other_steward": 404, "data_holder": 404}, None),
    ("metrics", "get", lambda w: "/api/innovation-metrics/", None,
     NOBODY | {"steward": 200, "other_steward": 200, "auditor": 200, "admin": 200}, None),
    ("page-home", "get", lambda w: "/innovation/", None, PAGES, None),
    ("page-scenario", "get", lambda w: "/innovation/scenarios/building-use/", None, PAGES, None),
    ("page-challenge", "get", lambda w: f"/innovation/challenges/{SLUG}/", None, PAGES, None),
    ("page-close", "post", lambda w: f"/innovation/challenges/{SLUG}/close/", lambda w: {},
     dict.fromkeys(ROLES, 403) | {"anonymous": 302, "steward": 302}, 302),
    ("page-metrics", "get", lambda w: "/innovation/metrics/", None,
     dict.fromkeys(ROLES, 403) | {"anonymous": 302, "steward": 200, "other_steward": 200, "auditor": 200,
                                   "admin": 200}, None),
]
# The applicant (mili-tech) has joined team 同济 here; its captain is the researcher.
MEMBER_TABLE = [
    ("team-leave", "post", lambda w: f"/api/teams/{w.team['id']}/leave/", None,
     NOBODY | {"researcher": 409, "applicant": 200}, 200),
]
SHOWCASE_TABLE = [
    ("showcase", "get", lambda w: "/api/showcase/", None, EVERYONE, None),
    ("showcase-private-board", "get", lambda w: f"/api/challenges/{SLUG}/private-board/", None, EVERYONE, None),
    ("showcase-item", "get", lambda w: f"/api/showcase/{w.item.pk}/", None, EVERYONE, None),
    ("showcase-verify", "get", lambda w: f"/api/showcase/{w.item.pk}/verify/", None, EVERYONE, None),
    ("showcase-weights", "get", lambda w: f"/api/showcase/{w.item.pk}/weights/", None, EVERYONE, 200),
    ("showcase-share", "post", lambda w: "/api/showcase/",
     lambda w: {"submission": w.second.pk, "title": "t", "summary": "s", "licence": "CC-BY-4.0"},
     NOBODY | {"researcher": 201, "applicant": 403}, 201),
    ("page-showcase", "get", lambda w: f"/innovation/showcase/{w.item.pk}/", None, PAGES, None),
]


def innovation_world(w, *, closed: bool, joined: bool = False):
    from django.test import TestCase

    from innovation import actions
    from innovation.models import Challenge, Submission, Team
    from innovation_support import add_people, submit_weights, times, trained_weights

    add_people(w)
    challenge = open_challenge(w, rooms=1500)
    w.second_challenge = {**challenge, "slug": "second", "hidden_corpus": w.rooms_corpus.pk, **times()}
    w.second_challenge = {k: w.second_challenge[k] for k in (
        "scenario", "slug", "title", "task", "training_dataset", "hidden_corpus", "rules", "opens_at", "final_at",
        "closes_at")}
    w.team = register(w.researcher, SLUG, "同济")
    w.invitation = actions.invite(actor=w.researcher, team=Team.objects.get(pk=w.team["id"]), username="applicant")
    if joined:
        actions.answer_invitation(actor=w.applicant, invitation=w.invitation, accept=True)
    weights = trained_weights(epochs=1, rooms=2000, neighbourhoods=Challenge.objects.get(slug=SLUG).spec["neighbourhoods"])
    with TestCase.captureOnCommitCallbacks(execute=True):  # as their commits do: the files are stored
        w.submission = Submission.objects.get(pk=submit_weights(w.researcher, SLUG, weights).json()["id"])
        w.second = Submission.objects.get(pk=submit_weights(w.researcher, SLUG, weights).json()["id"])
    for submission in (w.submission, w.second):  # as the scoring task records it
        actions.record_score(submission_id=submission.pk, score=0.72)
    if closed:
        actions.close_challenge(actor=w.steward, challenge=Challenge.objects.get(slug=SLUG))
        actions.record_private_board(challenge_id=w.submission.challenge_id, scores={w.submission.pk: 0.7,
                                                                                     w.second.pk: 0.69})
        w.item = actions.share_result(actor=w.researcher, submission=w.submission, title="MLP", summary="s",
                                      licence="CC-BY-4.0")
    return w


@pytest.fixture(scope="module")
def shared_innovation_world(request, django_db_setup, django_db_blocker):
    """`innovation_world` built once per module for each variant (open, closed with a showcase
    item, or with the applicant in the team; given as the parameter): pytest tears one down
    before it builds the next, and each case asks on a copy of it inside a savepoint of its own."""
    with rolled_back_at_the_end(django_db_blocker):
        yield innovation_world(build_world(), **VARIANTS[request.param])


VARIANTS = {"open": {"closed": False}, "closed": {"closed": True}, "joined": {"closed": False, "joined": True}}


def _case(shared, table, name, role):
    _, method, path, body, expected, done = next(t for t in table if t[0] == name)
    w = per_test(shared)
    assert_answers(w, role, method, path(w), body(w) if body else None, expected, done)


CASES = [(name, role) for name, *_ in TABLE for role in ROLES]
SHOWCASE_CASES = [(name, role) for name, *_ in SHOWCASE_TABLE for role in ROLES]
MEMBER_CASES = [(name, role) for name, *_ in MEMBER_TABLE for role in ROLES]


def _on(variant):
    return pytest.mark.parametrize("shared_innovation_world", [variant], indirect=True)


@_on("open")
@pytest.mark.parametrize("name,role", CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_innovation_endpoint_answers_each_role(shared_innovation_world, name, role):
    _case(shared_innovation_world, TABLE, name, role)


@_on("closed")
@pytest.mark.parametrize("name,role", SHOWCASE_CASES, ids=[f"{n}-{r}" for n, r in SHOWCASE_CASES])
def test_showcase_endpoint_answers_each_role(shared_innovation_world, name, role):
    _case(shared_innovation_world, SHOWCASE_TABLE, name, role)


@_on("joined")
@pytest.mark.parametrize("name,role", MEMBER_CASES, ids=[f"{n}-{r}" for n, r in MEMBER_CASES])
def test_member_endpoint_answers_each_role(shared_innovation_world, name, role):
    _case(shared_innovation_world, MEMBER_TABLE, name, role)
