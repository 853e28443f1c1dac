"""Pages' buttons for licences and downloads, resubmission and leak tracing. Each parses the
form, calls access.downloads or an access action, and reports the outcome."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access import actions as access_actions
from access import downloads
from access import rules as access_rules
from access.models import Application, Licence
from kernel import roles
from kernel.errors import ActionError, InvalidInput
from releases import rules as releases_rules
from releases.models import Release

from . import forms


def _licence(request, pk: int) -> Licence:
    qs = access_rules.visible_licences(
        request.user,
        Licence.objects.select_related("release__corpus__dataset__owner", "organisation", "application"),
    )
    return get_object_or_404(qs, pk=pk)


@login_required
@require_POST
def download_licence(request, pk: int):
    """A fresh link for the caller's own package, followed at once."""
    try:
        link = downloads.issue_licence_link(
            actor=request.user, licence=_licence(request, pk), fmt=request.POST.get("format", "geojson")
        )
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard")
    return redirect(link.url)


@login_required
@require_POST
def download_release(request, pk: int):
    release = get_object_or_404(
        releases_rules.visible_releases(request.user, Release.objects.select_related("corpus__dataset")), pk=pk
    )
    try:
        link = downloads.issue_release_link(
            actor=request.user, release=release, fmt=request.POST.get("format", "geojson")
        )
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard")
    return redirect(link.url)


@login_required
@require_POST
def change_licence(request, pk: int):
    change = {
        "suspend": access_actions.suspend_licence,
        "revoke": access_actions.revoke_licence,
        "reinstate": access_actions.reinstate_licence,
    }.get(request.POST.get("do", ""))
    if change is None:
        messages.error(request, _("未知的操作。"))
        return redirect("dashboard")
    licence = _licence(request, pk)
    if request.POST["do"] != "reinstate" and roles.allowed(access_rules.check_manage_licence, request.user,
                                                                licence):
        asked = forms.confirmation(request, **{
            "suspend": {"title": _("暂停许可 #%(pk)s？") % {"pk": pk},
                        "consequence": _("暂停期间被许可组织不能下载；可以恢复。")},
            "revoke": {"title": _("撤销许可 #%(pk)s？") % {"pk": pk},
                       "consequence": _("撤销后许可永久失效，不能恢复；被许可组织须重新申请。")},
        }[request.POST["do"]])
        if asked is not None:
            return asked
    try:
        change(actor=request.user, licence=licence, reason=request.POST.get("reason", ""))
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("许可 #%(pk)s 已更新。") % {"pk": pk})
    return redirect("dashboard")


@login_required
@require_POST
def resubmit_application(request, pk: int):
    application = get_object_or_404(
        access_rules.visible_applications(request.user, Application.objects.select_related("dataset")), pk=pk
    )
    form = request.POST
    try:
        changes = {"purpose": form.get("purpose", "")}
        if form.get("purpose_category"):
            changes["purpose_category"] = form["purpose_category"]
        if form.get("duration_days"):
            try:
                changes["duration_days"] = int(form["duration_days"])
            except ValueError:
                raise InvalidInput("duration_days", _("enter a whole number of days")) from None
        access_actions.resubmit_application(actor=request.user, application=application, **changes)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("申请 #%(pk)s 已重新提交。") % {"pk": pk})
    return redirect("dashboard")


@login_required
@require_POST
def trace_leak(request):
    try:
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("file", _("choose a file to upload"))
        finding = access_actions.trace_leak(
            actor=request.user, upload=upload, declared_crs=request.POST.get("declared_crs", "")
        )
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        if finding.licence_id:
            messages.warning(
                request,
                _("泄露文件来自许可 #%(licence)s（%(org)s）。")
                % {"licence": finding.licence_id, "org": finding.recipient},
            )
        else:
            messages.info(request, _("泄露文件无法归属到任何许可。"))
    return redirect("dashboard")
