"""Pages for active defense: a steward marks an alert handled."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from defense import actions
from defense import rules as defense_rules
from defense.models import Alert
from kernel.errors import ActionError, Refused


@login_required
@require_POST
def acknowledge(request, pk: int):
    alert = get_object_or_404(defense_rules.visible_alerts(request.user, Alert.objects.all()), pk=pk)
    try:
        actions.acknowledge_alert(actor=request.user, alert=alert, note=request.POST.get("note", ""))
    except Refused:
        raise  # the 403 page: miliao.middleware.ActionErrorPageMiddleware
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("告警 #%(pk)s 已标记为已处理。") % {"pk": pk})
    return redirect("dashboard")
