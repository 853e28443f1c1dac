"""The site's error pages and favicon. Error pages: 400, 403, 404, 405, 409 and 500 in the portal's layout and the visitor's
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

from kernel.errors import ActionError, Refused
from kernel.web import is_api, not_found


def _texts(status: int) -> tuple[str, str]:
    return {
        400: (_("请求有误"), _("表单或地址中有一项不对，见下面的原因。请返回上一页修改后再试。")),
        403: (_("没有权限"), _("您的账户无权查看或执行此操作。如认为有误，请联系本机构的数据管理员。")),
        404: (_("页面不存在"), _("找不到这个地址。它可能已被移除，或链接有误。")),
        409: (_("操作冲突"), _("对象当前的状态不允许这个操作（例如已经处理过）。请刷新页面查看最新状态。")),
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


def action_error(request, exc: ActionError):
    """The answer to an action's refusal that a view let through (miliao.middleware): the
    403 page for `Refused`, 409 for `Conflict`, 400 for `InvalidInput` (its field named), each
    with the action's reason; JSON in the API's error shape under /api/."""
    if isinstance(exc, Refused):
        return permission_denied(request, PermissionDenied(exc.message))
    if is_api(request):
        return JsonResponse(exc.as_data(), status=exc.status)
    return _page(request, exc.status, exc.message)


def method_not_allowed(request, response):
    """A bare 405 (a POST-only view opened with GET) as the site's page, with its Allow header."""
    page = _page(request, 405)
    if response.has_header("Allow"):
        page["Allow"] = response["Allow"]
    return page


def favicon(request):
    """/favicon.ico, which browsers ask for on every site whatever the page links."""
    icon = (settings.REPO_DIR / "static" / "miliao" / "favicon.ico").read_bytes()  # 238 bytes
    response = HttpResponse(icon, content_type="image/vnd.microsoft.icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
