"""The portal's forms read their input with the API's own serializers (one input schema for
the two doors), and show what went wrong next to the field it concerns."""
from __future__ import annotations

from miliao.errors import ActionError, InvalidInput


class FormInvalid(InvalidInput):
    """Every field a serializer refused, with its messages."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(field, message)
        self.errors = errors


def validated(serializer_class, data, **kwargs) -> dict:
    """The serializer's validated data for a form's POST (a QueryDict: lists read with getlist),
    or FormInvalid naming each refused field."""
    body = serializer_class(data=data, **kwargs)
    if not body.is_valid():
        raise FormInvalid({field: " ".join(str(m) for m in _messages(found)) for field, found in body.errors.items()})
    return body.validated_data


def _messages(found) -> list:
    if isinstance(found, dict):
        return [m for value in found.values() for m in _messages(value)]
    return list(found) if isinstance(found, list) else [found]


def errors_of(exc: ActionError) -> dict[str, str]:
    """A refused form's errors by field; an error of no one field is under "form"."""
    if isinstance(exc, FormInvalid):
        return exc.errors
    if isinstance(exc, InvalidInput):
        return {exc.field.split(".")[-1]: exc.field_message}
    return {"form": exc.message}
