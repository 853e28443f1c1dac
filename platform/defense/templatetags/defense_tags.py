"""The dashboards' risk alert card."""
from __future__ import annotations

from django import template

from defense import rules
from defense.models import Alert
from kernel import roles

register = template.Library()


@register.inclusion_tag("portal/_alerts.html", takes_context=True)
def risk_alerts(context):
    """Open alerts first, then the latest handled ones, as the user may see them."""
    user = context["request"].user
    qs = rules.visible_alerts(user, Alert.objects.select_related("organisation", "dataset", "licence"))
    return {
        "open_alerts": list(qs.filter(status="open")[:30]),
        "handled_alerts": list(qs.exclude(status="open")[:10]),
        "may_handle": roles.has_role(user, "steward"),
    }
