"""Errors that actions raise. Views turn them into a 400/403/409 answer or a page message.

Messages are written for people and translated where they are raised (`gettext` with named
placeholders), in the language of the request that ran the action; what a client reads by
machine stays fixed: the status, and for `InvalidInput` the field's name (`{"<field>": [message]}`)."""
from __future__ import annotations

from django.utils.translation import gettext as _


class ActionError(Exception):
    """An action refused to run; nothing was written."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_data(self) -> dict:
        return {"detail": self.message}


class InvalidInput(ActionError):
    """A named field of the request is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(_("%(field)s: %(message)s") % {"field": field, "message": message})
        self.field = field
        self.field_message = message

    def as_data(self) -> dict:
        return {self.field: [self.field_message]}


class Refused(ActionError):
    """The actor's role or organisation does not allow this."""

    status = 403


class Conflict(ActionError):
    """The object is not in a state that allows this (already decided, say)."""

    status = 409
