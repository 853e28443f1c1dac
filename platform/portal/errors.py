"""The site's error pages and favicon. Error pages: 403, 404, 405 and 500 in the portal's layout and the visitor's
language (LocaleMiddleware has chosen it by then). Paths under /api/ answer JSON, as the
rest of the API does (DRF's messages), never an HTML page.

Django's own debug pages (the 404 that lists every URL pattern, the 500 traceback) show
only with DEBUG on; production and the demo run with DEBUG off and get these.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext as _
from rest_framework import exceptions as api_errors

from kernel.errors import Refused
from miliao.api import is_api, not_found


def _texts(status: int) -> tuple[str, str]:
    return {
        403: (_("没有权限"), _("您的账户无权查看或执行此操作。如认为有误，请联系本机构的数据管理员。")),
        404: (_("页面不存在"), _("找不到这个地址。它可能已被移除，或链接有误。")),
        405: (_("不支持此操作"), _("这个地址只接受表单提交，不能直接打开。请从工作台进入相应页面。")),
        500: (_("服务器错误"), _("服务器处理请求时出错，已记录在日志中。请稍后再试。")),
    }[status]


def _page(request, status: int, reason: str = ""):
    title, message = _texts(status)
    context = {"status": status, "title": title, "message": message, "reason": reason}
    return render(request, "portal/error.html", context, status=status)


def permission_denied(request, exception=None):
    reason = str(exception) if exception is not None and exception.args else ""
    if is_api(request):
        return JsonResponse({"detail": reason or str(api_errors.PermissionDenied.default_detail)}, status=403)
    return _page(request, 403, reason)


def page_not_found(request, exception=None):
    if is_api(request):
        return not_found(request)
    return _page(request, 404)


def csrf_failure(request, reason=""):
    """A form posted without its CSRF token (an expired page, cookies off): a 403 page."""
    return _page(request, 403, _("表单已过期或浏览器未发送 Cookie，请刷新页面后重试。"))


def server_error(request):
    """Rendered without the request's context: whatever failed (the database, the session)
    must not fail the error page too, so the page shows no user menu and no forms."""
    if is_api(request):
        return JsonResponse({"detail": str(api_errors.APIException.default_detail)}, status=500)
    title, message = _texts(500)
    html = loader.get_template("portal/error.html").render(
        {"status": 500, "title": title, "message": message, "bare": True}
    )
    return HttpResponseServerError(html)


class MethodNotAllowedPageMiddleware:
    """A portal view that only takes POST (`require_POST`) answers GET with an empty 405;
    a person who followed or typed the address gets the site's page instead, with the same
    status and Allow header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 405 or is_api(request) or response.content:
            return response
        page = _page(request, 405)
        if response.has_header("Allow"):
            page["Allow"] = response["Allow"]
        return page


class RefusedIsForbiddenMiddleware:
    """A portal view lets an action's or a rule's `Refused` through, and the visitor gets the
    site's 403 page with its reason: one place for what each view used to write itself
    (`except Refused: raise PermissionDenied`). A view that shows other refusals on its own page
    (`except ActionError`) re-raises `Refused` to come here. The API's views answer through
    DRF's exception handler and never reach this."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Refused):
            return permission_denied(request, PermissionDenied(exception.message))
        return None


def favicon(request):
    """/favicon.ico, which browsers ask for on every site whatever the page links."""
    icon = (settings.REPO_DIR / "static" / "miliao" / "favicon.ico").read_bytes()  # 238 bytes
    response = HttpResponse(icon, content_type="image/vnd.microsoft.icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
