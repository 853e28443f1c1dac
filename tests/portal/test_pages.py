"""Page forms call the same actions as the API: admins add organisations and users,
everyone manages their own API token, and refusals come back as page messages."""
from __future__ import annotations

import pytest

from conftest import PASSWORD, api_client

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]


def _messages(response):
    return [str(m) for m in response.context["messages"]]


def test_admin_adds_an_organisation_and_a_user_from_the_dashboard(world, client):
    from accounts.models import Organisation, User

    client.force_login(world.admin)
    response = client.post(
        "/organisations/new/", {"code": "xuhui", "name": "徐汇区规划资源局", "kind": "district"}, follow=True
    )
    assert "组织 徐汇区规划资源局 已创建。" in _messages(response)
    response = client.post(
        "/users/new/",
        {"username": "xuhui-node", "password": "Node-password-991", "role": "data_holder", "organisation": "xuhui"},
        follow=True,
    )
    assert "用户 xuhui-node 已创建。" in _messages(response)
    user = User.objects.get(username="xuhui-node")
    assert user.organisation == Organisation.objects.get(code="xuhui") and user.check_password("Node-password-991")
    assert client.login(username="xuhui-node", password="Node-password-991")


@pytest.mark.parametrize(
    "who,form,message",
    [
        ("steward", {"username": "sneaky", "password": PASSWORD, "role": "admin", "organisation": "sh-planning"}, "needs the role"),
        ("admin", {"username": "aud2", "password": PASSWORD, "role": "auditor", "organisation": "mili-tech"}, "Organisation: a Auditor belongs"),
        ("admin", {"username": "nobody", "password": PASSWORD, "role": "applicant", "organisation": "atlantis"}, "Organisation: choose an existing"),
        ("admin", {"username": "weakling", "password": "abc", "role": "applicant", "organisation": "mili-tech"}, "Password:"),
    ],
)
def test_refused_user_creation_is_a_page_message_and_writes_nothing(world, client, who, form, message):
    from accounts.models import User
    from provenance.models import LineageEvent

    before = (User.objects.count(), LineageEvent.objects.count())
    client.force_login(world.by_role[who])
    response = client.post("/users/new/", form, follow=True, HTTP_ACCEPT_LANGUAGE="en")  # the messages quoted
    assert any(message in m for m in _messages(response)), _messages(response)
    assert (User.objects.count(), LineageEvent.objects.count()) == before


def test_rotating_the_api_token_revokes_the_old_one(world, client):
    from provenance.models import LineageEvent

    old = client.post("/api/auth/token/", {"username": "applicant", "password": PASSWORD}).json()["token"]
    again = client.post("/api/auth/token/", {"username": "applicant", "password": PASSWORD}).json()["token"]
    assert again == old
    assert LineageEvent.objects.filter(event_type="accounts.api_token_issued").count() == 1

    client.force_login(world.applicant)
    page = client.post("/account/token/", follow=True)
    new = page.context["token"].key
    assert new != old and new in page.content.decode()
    event = LineageEvent.objects.get(event_type="accounts.api_token_rotated")
    assert new not in event.payload and old not in event.payload  # keys never enter the log
    assert api_client().get("/api/me/", HTTP_AUTHORIZATION=f"Token {old}").status_code == 401
    assert api_client().get("/api/me/", HTTP_AUTHORIZATION=f"Token {new}").status_code == 200


@pytest.mark.parametrize("path", ["/organisations/new/", "/users/new/", "/events/verify/", "/account/token/"])
def test_page_forms_refuse_get(world, client, path):
    client.force_login(world.admin)
    assert client.get(path).status_code == 405


def test_event_log_page_is_for_auditors_stewards_and_admins(world, client):
    for role, status in [("auditor", 200), ("steward", 200), ("admin", 200), ("applicant", 403), ("data_holder", 403)]:
        client.force_login(world.by_role[role])
        assert client.get("/events/").status_code == status, role
    client.force_login(world.steward)
    assert client.post("/events/verify/").status_code == 403  # stewards read; auditors verify
