"""Filters that put recorded codes into words on a page: portal.readable's own functions."""
from __future__ import annotations

from django import template

from kernel.logs import clean_log
from portal import readable

register = template.Library()

for name in ("event_label", "subject_link", "actor_label", "metric_label", "applied_shift_label"):
    register.filter(name, getattr(readable, name))
register.filter("clean_log", clean_log)


@register.filter
def organisation_names(codes) -> str:
    """Organisation codes (as a record keeps them) by their names, for a page."""
    from accounts.models import Organisation

    codes = list(codes or [])
    names = {o.code: str(o) for o in Organisation.objects.filter(code__in=codes)}
    return ", ".join(names.get(code, code) for code in codes)
