"""Leaving a team: a member leaves while submissions are open (through the API or the
challenge page) and may then register a team of their own; the captain cannot leave, and
nobody leaves once submissions have ended. A refusal writes nothing."""
from __future__ import annotations

import datetime
import json

import pytest

from conftest import api_client
from innovation_support import add_people, open_challenge, register

pytestmark = [pytest.mark.innovation, pytest.mark.django_db]


def _join(captain, team_id, member):
    invited = api_client(captain).post(f"/api/teams/{team_id}/invite/", {"username": member.username}, format="json")
    assert invited.status_code == 201, invited.content
    accepted = api_client(member).post(f"/api/invitations/{invited.json()['id']}/accept/")
    assert accepted.status_code == 200, accepted.content


def test_a_member_leaves_while_open_and_the_team_is_fixed_after_the_deadline(world):
    from django.test import Client
    from django.utils import timezone

    from innovation.models import Challenge
    from provenance.models import LineageEvent

    w = add_people(world)
    challenge = open_challenge(w, rooms=1500)
    slug = challenge["slug"]
    team = register(w.researcher, slug, "同济")
    _join(w.researcher, team["id"], w.applicant)
    _join(w.researcher, team["id"], w.fudan_user)
    members = lambda: [m["username"] for m in api_client(w.auditor).get(f"/api/teams/{team['id']}/").json()["members"]]  # noqa: E731
    assert members() == ["applicant", "fudan", "researcher"]

    # The captain answers for the team and stays.
    events = LineageEvent.objects.count()
    captain = api_client(w.researcher).post(f"/api/teams/{team['id']}/leave/")
    assert captain.status_code == 409 and "captain" in captain.json()["detail"]
    assert LineageEvent.objects.count() == events and "researcher" in members()

    # A member leaves from the challenge page, and may then register a team of their own.
    assert 'data-testid="leave"' in _page(w.applicant, slug)
    page = Client()
    page.force_login(w.applicant)
    left = page.post(f"/innovation/challenges/{slug}/leave/", follow=True)
    assert left.status_code == 200 and "已退出参赛队" in left.content.decode()
    assert members() == ["fudan", "researcher"]
    event = LineageEvent.objects.filter(event_type="innovation.member_left").get()
    assert json.loads(event.payload) == {"member": "applicant", "organisation": "mili-tech"}
    assert register(w.applicant, slug, "米粒")["members"][0]["username"] == "applicant"

    # Once submissions have ended the team is fixed for its final.
    Challenge.objects.filter(slug=slug).update(final_at=timezone.now() - datetime.timedelta(minutes=1))
    events = LineageEvent.objects.count()
    late = api_client(w.fudan_user).post(f"/api/teams/{team['id']}/leave/")
    assert late.status_code == 409 and "fixed" in late.json()["detail"]
    assert LineageEvent.objects.count() == events and "fudan" in members()
    assert 'data-testid="leave"' not in _page(w.fudan_user, slug)


def _page(user, slug) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.get(f"/innovation/challenges/{slug}/").content.decode()


@pytest.mark.parametrize("answer", ["accept", "decline"])
def test_an_invitation_id_that_is_not_a_number_is_not_found(world, answer):
    """A regression test: `POST /api/invitations/abc/accept/` answered 500 (ValueError)."""
    client = api_client(world.applicant)
    for invitation in ("abc", "1.5", "99999"):
        response = client.post(f"/api/invitations/{invitation}/{answer}/")
        assert response.status_code == 404, (invitation, response.status_code, response.content)
