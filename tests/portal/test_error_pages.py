"""Error pages: 403, 404, 405 and 500 in the site's layout and the visitor's language, JSON
under /api/, never Django's debug pages; and /favicon.ico."""
from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import path

import miliao.urls
from conftest import PASSWORD
from portal import errors

pytestmark = pytest.mark.foundation


def _boom(request):
    raise RuntimeError("a bug in a view")


def _refused(request):
    from kernel.errors import Refused

    raise Refused("only the dataset's steward may do this")


def _conflict(request):
    from kernel.errors import Conflict

    raise Conflict("application #7 was already approved")


def _invalid(request):
    from kernel.errors import InvalidInput

    raise InvalidInput("epsilon", "a number above 0")


# The real URL map plus a view that fails, for the 500 page, and views that let an action's
# refusal, conflict or invalid input through (settings.ROOT_URLCONF below).
urlpatterns = [path("boom/", _boom), path("api/boom/", _boom), path("refused/", _refused),
               path("conflict/", _conflict), path("invalid/", _invalid), path("api/conflict/", _conflict),
               path("api/invalid/", _invalid), *miliao.urls.urlpatterns]
handler403, handler404, handler500 = errors.permission_denied, errors.page_not_found, errors.server_error

TITLES = {
    "zh-hans": {403: "403 · 没有权限", 404: "404 · 页面不存在", 405: "405 · 不支持此操作", 500: "500 · 服务器错误"},
    "en": {403: "403 · Permission denied", 404: "404 · Page not found", 405: "405 · Method not allowed",
           500: "500 · Server error"},
}
FOOTER = {"zh-hans": "数据可用不可见", "en": "Data usable but not visible"}


@pytest.fixture
def visitor(db, settings):
    """A client in a language, logged in as an applicant (or anonymous)."""
    from accounts import actions as account_actions

    settings.ROOT_URLCONF = __name__
    startup = account_actions.create_organisation(actor=None, code="mili-tech", name="米粒科技", kind="startup")
    applicant = account_actions.create_user(actor=None, username="applicant", password=PASSWORD, role="applicant",
                                            organisation=startup)

    def make(language: str, logged_in: bool = True) -> Client:
        client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE=language)
        if logged_in:
            client.force_login(applicant)
        return client

    return make


def _request(client: Client, status: int):
    return {
        403: lambda: client.get("/events/"),  # an applicant may not read the event log
        404: lambda: client.get("/no-such-page/"),
        405: lambda: client.get("/leaks/"),  # a form's target (require_POST), opened directly
        500: lambda: client.get("/boom/"),
    }[status]()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize("status", [403, 404, 405, 500])
def test_each_error_is_a_page_of_the_site_in_the_visitors_language(visitor, language, status):
    response = _request(visitor(language), status)
    html = response.content.decode()
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert f'data-testid="error-title">{TITLES[language][status]}</h1>' in html
    assert FOOTER[language] in html and 'href="/static/miliao/site.css"' in html  # the site's layout
    assert f'<html lang="{language}">' in html
    # Never Django's debug pages, whatever went wrong.
    assert "URLconf" not in html and "Traceback" not in html and "a bug in a view" not in html
    if status == 403:
        assert 'data-testid="error-reason"' in html  # why, as the permission rule says it
    if status == 405:
        assert response["Allow"] == "POST"
    if status == 500:
        assert 'data-testid="who"' not in html  # the bare page: nothing that could fail again


def test_a_refusal_a_view_lets_through_is_the_403_page_with_its_reason(visitor):
    """Portal views no longer turn `Refused` into PermissionDenied each on its own:
    `miliao.middleware.ActionErrorPageMiddleware` does, once."""
    response = visitor("en").get("/refused/")
    html = response.content.decode()
    assert response.status_code == 403 and "403 · Permission denied" in html
    assert "only the dataset&#x27;s steward may do this" in html or "only the dataset's steward may do this" in html


@pytest.mark.parametrize("language,titles", [
    ("en", {"conflict": "409 · Conflict", "invalid": "400 · Bad request"}),
    ("zh-hans", {"conflict": "409 · 操作冲突", "invalid": "400 · 请求有误"}),
])
def test_a_conflict_or_invalid_input_a_view_lets_through_is_the_sites_page_with_its_reason(visitor, language, titles):
    """Not a 500: the state's conflict is the 409 page, a wrong field the 400 page naming it."""
    client = visitor(language)
    response = client.get("/conflict/")
    html = response.content.decode()
    assert response.status_code == 409 and titles["conflict"] in html
    assert "application #7 was already approved" in html and 'data-testid="error-reason"' in html
    response = client.get("/invalid/")
    html = response.content.decode()
    assert response.status_code == 400 and titles["invalid"] in html
    assert "a number above 0" in html
    assert "ε" in html  # the field, by its label
    assert FOOTER[language] in html  # the site's layout


def test_action_errors_under_the_api_stay_json_in_the_error_shape(visitor):
    response = visitor("en").get("/api/conflict/")
    assert response.status_code == 409 and response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": "application #7 was already approved"}
    response = visitor("en").get("/api/invalid/")
    assert response.status_code == 400
    assert json.loads(response.content) == {"epsilon": ["a number above 0"]}


def test_anonymous_visitors_get_the_page_too(visitor):
    response = visitor("en", logged_in=False).get("/no-such-page/")
    assert response.status_code == 404 and "404 · Page not found" in response.content.decode()


@pytest.mark.parametrize("url,status", [("/api/no-such-thing/", 404), ("/api/boom/", 500)])
def test_api_errors_stay_json(visitor, url, status):
    response = visitor("en").get(url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(json.loads(response.content)) == {"detail"}


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/vnd.microsoft.icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
