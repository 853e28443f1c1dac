"""The portal's forms read their input with the API's own serializers (one input schema for
the two doors), and show what went wrong next to the field it concerns."""
from __future__ import annotations

from kernel.errors import ActionError, InvalidInput


class FormInvalid(InvalidInput):
    """Every field a serializer refused, with its messages."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(field, message)
        self.errors = errors


def validated(serializer_class, data, *, lists: tuple[str, ...] = (), **kwargs) -> dict:
    """The serializer's validated data for a form (a POST's QueryDict, or a dict), or FormInvalid
    naming each refused field. Only the fields the form filled in are given, as JSON would give
    them (an empty input is a field left out; a list field absent from an HTML form would
    otherwise read as an empty list)."""
    if hasattr(data, "getlist"):
        data = {name: data.getlist(name) if name in lists else data.get(name) for name in data
                if name in lists or data.get(name) != ""}
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


CONFIRMED = "confirmed"


def confirmation(request, *, title: str, consequence: str):
    """A confirmation step for an irreversible action, on the server (no script needed): None
    once the POST carries the confirmation, else the page that asks for it, which posts the
    same fields again with it (or goes back)."""
    from django.shortcuts import render
    from django.utils.http import url_has_allowed_host_and_scheme

    if request.POST.get(CONFIRMED) == "yes":
        return None
    fields = [(name, value) for name, values in request.POST.lists() if name != "csrfmiddlewaretoken"
              for value in values]
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    return render(request, "portal/confirm.html", {
        "title": title, "consequence": consequence, "fields": fields, "action": request.get_full_path(),
        "back": back, "shown": [(n, v) for n, v in fields if n in ("reason", "text", "note") and v],
    })
