"""Attack figures of a release report, written for people."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(share) -> str:
    """A share (0 to 1) as a percentage with one decimal ("99.8%"); empty when there is none."""
    if isinstance(share, bool) or not isinstance(share, (int, float)):
        return ""
    return f"{share * 100:.1f}%"
