"""The dashboards' privacy budget card, and amounts written for people."""
from __future__ import annotations

from decimal import Decimal

from django import template

from budgets import amounts
from budgets import rules
from budgets.models import PrivacyBudget

register = template.Library()


@register.inclusion_tag("portal/_budgets.html", takes_context=True)
def privacy_budgets(context, scope: str):
    """Budgets held by the user's organisation (scope "organisation") or spent on its
    bureau's datasets (scope "bureau")."""
    user = context["request"].user
    qs = rules.visible_budgets(user, PrivacyBudget.objects.select_related("organisation", "dataset"))
    field = {"organisation": "organisation_id", "bureau": "dataset__owner_id"}[scope]
    return {"budgets": qs.filter(**{field: user.organisation_id})[:50]}


@register.filter
def amount(value: Decimal) -> str:
    return amounts.short(value) if isinstance(value, Decimal) else value
