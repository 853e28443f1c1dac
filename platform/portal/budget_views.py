"""The privacy budget page: totals, every grant, spend and refund with its job and event, a
chart of ε spent against ε_total, and a refund form for the stewards who may refund."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from budgets import actions as budget_actions
from budgets import amounts, plot
from budgets import rules as budgets_rules
from budgets.models import PrivacyBudget
from kernel import roles
from kernel.errors import ActionError
from portal import charts
from provenance import rules as provenance_rules


def _visible_budget(request, pk: int) -> PrivacyBudget:
    qs = budgets_rules.visible_budgets(
        request.user, PrivacyBudget.objects.select_related("organisation", "dataset__owner")
    )
    return get_object_or_404(qs, pk=pk)


@login_required
def budget_page(request, pk: int):
    budget = _visible_budget(request, pk)
    entries = list(budget.entries.select_related("actor", "refund_of").order_by("pk"))
    history = plot.steps(
        (timezone.localtime(e.created_at), e.kind, e.epsilon,
         f"#{e.pk} {e.get_kind_display()} ε {amounts.short(e.epsilon)} {e.job}".rstrip())
        for e in entries
    )
    return render(request, "portal/budget.html", {
        "budget": budget,
        "entries": entries,
        "chart": charts.budget_over_time(history, until=timezone.localtime()),
        "may_refund": roles.allowed(budgets_rules.check_adjust_budget, request.user, budget),
        "may_trace": roles.allowed(provenance_rules.check_view_events, request.user),
    })


@login_required
@require_POST
def refund(request, pk: int):
    budget = _visible_budget(request, pk)
    budgets_rules.check_adjust_budget(request.user, budget)
    entry_id = request.POST.get("entry", "")
    entry = budget.entries.filter(pk=entry_id).first() if entry_id.isdigit() else None
    if entry is None:
        messages.error(request, _("请选择要退还的消耗记录。"))
        return redirect("budget-page", pk=pk)
    try:
        budget_actions.refund(
            actor=request.user, entry=entry, epsilon=request.POST.get("epsilon", ""),
            reason=request.POST.get("reason", ""),
        )
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("已退还。"))
    return redirect("budget-page", pk=pk)
