"""Login throttling (django-axes): which client a failed login comes from, what a locked-out
client is answered on each door, and the lockout recorded as an event.

Both doors (the portal's login page and the API's token endpoint) authenticate through
`django.contrib.auth.authenticate`, where axes counts failures per username and client IP.
"""
from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from kernel.web import is_api


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind a proxy the header it sets
    (MILIAO_CLIENT_IP_HEADER). Of a list (X-Forwarded-For) the right-most entry counts: it is
    the one our proxy appended; entries to its left come from the client and can be forged."""
    header = settings.MILIAO_CLIENT_IP_META
    if header:
        forwarded = [part.strip() for part in request.META.get(header, "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")


def cooloff_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, round(cooloff_seconds() / 60))
    return _("登录失败次数过多，已暂时锁定。请 %(minutes)d 分钟后再试，或联系数据管理员解锁。") % {
        "minutes": minutes
    }


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; JSON in the API's error shape, or the
    login page's layout with the message."""
    if is_api(request):
        response = JsonResponse({"detail": lockout_message()}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)
    response["Retry-After"] = str(cooloff_seconds())
    return response


def on_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    """Receiver of axes' `user_locked_out`: record the lockout once, when it starts (axes
    signals again at every refused try during the lockout)."""
    from . import actions

    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None and failures != settings.AXES_FAILURE_LIMIT:
        return
    actions.record_login_lockout(username=username or "", door="api" if is_api(request) else "portal")


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' gate in front of ModelBackend. A call without a request is no web login (a
    shell, a test client's `login`): there is no client to count, so it is let through to the
    next backend instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
