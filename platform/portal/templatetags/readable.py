"""Filters that put recorded codes into words on a page (portal.readable)."""
from __future__ import annotations

from django import template

from portal import readable

register = template.Library()


@register.filter
def event_label(event_type: str) -> str:
    return readable.event_label(event_type)


@register.filter
def subject_link(subject: str) -> readable.SubjectLink:
    return readable.subject_link(subject)


@register.filter
def actor_label(actor: str) -> str:
    return readable.actor_label(actor)


@register.filter
def clean_log(text: str) -> str:
    return readable.clean_log(text)


@register.filter
def check_label(name: str) -> str:
    return readable.check_label(name)


@register.filter
def metric_label(name: str) -> str:
    return readable.metric_label(name)


@register.filter
def organisation_names(codes) -> str:
    """Organisation codes (as a record keeps them) by their names, for a page."""
    from accounts.models import Organisation

    codes = list(codes or [])
    names = {o.code: str(o) for o in Organisation.objects.filter(code__in=codes)}
    return ", ".join(names.get(code, code) for code in codes)


@register.filter
def shift_label(mode: str) -> str:
    return readable.shift_label(mode)



