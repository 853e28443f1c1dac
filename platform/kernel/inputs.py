"""Checking an action's plain inputs, with InvalidInput naming the field: what every app's
actions share."""
from __future__ import annotations

from django.utils.translation import gettext as _

from .errors import InvalidInput


def text(value, field: str, *, limit: int, required: bool = True) -> str:
    """Stripped text of at most `limit` characters (not empty when `required`)."""
    if not isinstance(value, str):
        raise InvalidInput(field, _("must be text"))
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, _("must not be empty"))
    if len(value) > limit:
        raise InvalidInput(field, _("at most %(limit)s characters, not %(n_value)s")
                                  % {"limit": limit, "n_value": len(value)})
    return value


def whole(value, field: str, low: int, high: int) -> int:
    """A whole number (not a bool) from `low` to `high`."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(field, _("a whole number from %(low)s to %(high)s") % {"low": low, "high": high})
    return value
