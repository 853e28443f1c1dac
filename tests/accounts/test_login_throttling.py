"""Login throttling on both doors (django-axes): an attacker guessing one user's password
from one address is refused with 429 well before 50 tries, the right password too until the
cool-off ends or a steward unlocks; other users and addresses keep logging in."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from conftest import PASSWORD

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]

ATTACKER = "203.0.113.9"
TOKEN_URL = "/api/auth/token/"
LOGIN_URL = "/accounts/login/"


@pytest.fixture
def people(db):
    from accounts import actions

    org = actions.create_organisation(actor=None, code="mili-tech", name="米粒科技", kind="startup")
    bureau = actions.create_organisation(actor=None, code="sh-planning", name="规划资源局", kind="bureau")
    make = lambda name, role, o: actions.create_user(  # noqa: E731
        actor=None, username=name, password=PASSWORD, role=role, organisation=o
    )
    return make("target", "applicant", org), make("bystander", "applicant", org), make("steward", "steward", bureau)


def _api(username, password, ip=ATTACKER, lang="zh-hans"):
    return Client(REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE=lang).post(
        TOKEN_URL, {"username": username, "password": password}
    )


def _page(username, password, ip=ATTACKER, lang="zh-hans"):
    return Client(REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE=lang).post(
        LOGIN_URL, {"username": username, "password": password}
    )


def _hammer(door, username="target", tries=50):
    """Wrong passwords; the statuses in order."""
    return [door(username, f"wrong-{i}").status_code for i in range(tries)]


def _cool_off_passes():
    """Move every counted failure back past the cool-off: what the clock would do."""
    from axes.models import AccessAttempt
    from django.conf import settings

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.first().attempt_time
                                 - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def _events(kind):
    """(subject, actor, payload) of each event of the kind."""
    from provenance.models import LineageEvent

    return [(e.subject, e.actor, json.loads(e.payload)) for e in LineageEvent.objects.filter(event_type=kind)]


def test_token_endpoint_locks_out_a_guessed_user_and_only_that_user_from_that_address(people, settings):
    target, _, _ = people
    statuses = _hammer(_api)
    first_429 = statuses.index(429)
    assert first_429 < 10 and set(statuses[:first_429]) == {400} and set(statuses[first_429:]) == {429}

    refused = _api("target", PASSWORD, lang="en")
    assert refused.status_code == 429 and int(refused["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert refused.json() == {"detail": refused.json()["detail"]} and "Too many failed logins" in refused.json()["detail"]
    assert "登录失败次数过多" in _api("target", PASSWORD).json()["detail"]
    # Another user from the same address, and the user from another address, are unaffected.
    assert _api("bystander", PASSWORD).status_code == 200
    assert _api("target", PASSWORD, ip="198.51.100.7").status_code == 200

    [(subject, _, payload)] = _events("accounts.login_locked_out")  # one per lockout, not per refused try
    assert subject == f"accounts.user:{target.pk}" and payload["door"] == "api"
    assert ATTACKER not in str(payload)

    _cool_off_passes()
    assert _api("target", PASSWORD).status_code == 200
    # The successful login cleared the count: the attacker starts again from zero.
    assert [_api("target", "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT - 1)] == [400] * (
        settings.AXES_FAILURE_LIMIT - 1
    )


def test_login_page_locks_out_in_the_site_layout_and_a_steward_unlocks(people, settings):
    statuses = _hammer(_page)
    first_429 = statuses.index(429)
    assert first_429 < 10 and set(statuses[:first_429]) == {200} and set(statuses[first_429:]) == {429}

    refused = _page("target", PASSWORD, lang="en")
    body = refused.content.decode()
    assert refused.status_code == 429 and "Too many failed logins" in body and '<footer>' in body  # the site's layout
    assert "请 15 分钟后再试" in _page("target", PASSWORD).content.decode()
    assert _page("bystander", PASSWORD).status_code == 302  # logged in, redirected

    call_command("unlock_login", "target", "--by", "steward")
    assert _page("target", PASSWORD).status_code == 302
    [(_, actor, payload)] = _events("accounts.login_unlocked")
    assert actor == people[2].actor_label and payload["counters_cleared"] == 1
    assert _events("accounts.login_locked_out")[0][2]["door"] == "portal"


def test_unlocking_is_for_stewards_and_a_guessed_username_is_not_logged(people, settings):
    from accounts import actions
    from kernel.errors import InvalidInput, Refused

    limit = settings.AXES_FAILURE_LIMIT
    _hammer(_api, username="targte", tries=limit)  # a typo, or a password typed as a username
    [(subject, _, payload)] = _events("accounts.login_locked_out")
    assert subject == "accounts.user:unknown" and "targte" not in str(payload)

    _hammer(_api, tries=limit)
    with pytest.raises(Refused):
        actions.unlock_login(actor=people[1], username="target")
    assert _api("target", PASSWORD).status_code == 429
    # The steward unlocks from the admin's list of failed logins.
    from axes.models import AccessAttempt

    admin = Client()
    admin.force_login(people[2])
    attempt = AccessAttempt.objects.get(username="target")
    page = admin.get("/admin/axes/accessattempt/").content.decode()
    assert "target" in page and "targte" not in page  # a name that is no account is never shown
    listed = admin.post("/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [attempt.pk]})
    assert listed.status_code == 302 and not AccessAttempt.objects.filter(username="target").exists()
    assert _events("accounts.login_unlocked")[0][1] == people[2].actor_label
    assert _api("target", PASSWORD).status_code == 200
    with pytest.raises(InvalidInput, match="no failed logins|没有需要清除的登录失败记录"):
        actions.unlock_login(actor=people[2], username="bystander")


def test_behind_a_proxy_the_configured_header_names_the_client(people, settings):
    settings.MILIAO_CLIENT_IP_META = "HTTP_X_FORWARDED_FOR"
    proxy = "10.0.0.2"

    def via_proxy(username, password, client_ip=ATTACKER):
        # The left part is the client's own (forgeable) claim; the proxy appends what it saw.
        return Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {client_ip}").post(
            TOKEN_URL, {"username": username, "password": password}
        )

    assert _hammer(via_proxy, tries=settings.AXES_FAILURE_LIMIT)[-1] == 429
    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # Another client behind the same proxy still logs in as the target.
    assert via_proxy("target", PASSWORD, client_ip="198.51.100.7").status_code == 200
