"""The OpenAPI schema, told the way the API really answers: every operation gets a summary, a
description for each response, and the error answers it can give, all in one typed `Error`
schema (what `miliao.api.exception_handler` returns)."""
from __future__ import annotations

import re
from http import HTTPStatus

from drf_spectacular.openapi import AutoSchema
from rest_framework import permissions, serializers

# Why each error status comes, as a client generator's reader would want to know.
ERROR_REASONS = {
    "400": "The request is wrong: `detail` says why, or each wrong field is named with its messages.",
    "401": "No valid token or session: send `Authorization: Token <key>` (POST /api/auth/token/ gives one).",
    "403": "The caller's role or organisation does not allow this; `detail` says what is missing.",
    "404": "Nothing of that kind exists here, or the caller may not see it.",
    "409": "The object is not in a state that allows this (already decided, not yet closed, ...).",
    "429": "Too many requests: wait and try again (`Retry-After` says how many seconds).",
}

# Standard actions of a DRF viewset, and how a summary says them.
VERBS = {"list": "List {plural}", "retrieve": "Read one {noun}", "create": "Create {a} {noun}",
         "update": "Replace {a} {noun}", "partial_update": "Change {a} {noun}", "destroy": "Delete {a} {noun}"}


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the API (4xx): `detail` is the reason; a 400 about the request's
    fields names each wrong field instead, with a list of messages (or, for a list or nested
    field, the messages per item or sub-field). Some answers add context, such as `anchoring`
    (how far anchoring lags) on an inclusion proof that is not there yet."""

    detail = serializers.CharField(required=False, help_text="why the request was refused")

    class Meta:
        ref_name = "Error"


def _error_schema_extension():
    """The field messages that an `Error` may carry beside `detail`."""
    return {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
            {"type": "string"},
        ]
    }


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.;:!?])(\s|$)", text)
    sentence = (match.group(1) if match else text).rstrip(".;:")
    return sentence if len(sentence) <= 120 else sentence[:117].rsplit(" ", 1)[0] + "…"


class MiliaoAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus summaries, response descriptions and error responses."""

    def get_summary(self):
        """The first sentence of the action's docstring (or, for a plain view, the view's);
        for a viewset's standard actions without one, what they do to what."""
        action = getattr(self.view, "action", None)
        doc = (getattr(getattr(self.view, action or self.method.lower(), None), "__doc__", None) or "").strip()
        if not doc and action is None:
            doc = (self.view.__class__.__doc__ or "").strip()
        if doc:
            return _first_sentence(doc)
        noun = (getattr(self.view, "basename", None) or "object").replace("-", " ").replace("_", " ")
        plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
        article = "an" if noun[0] in "aeiou" else "a"
        if action in VERBS:
            return VERBS[action].format(noun=noun, plural=plural, a=article)
        return f"{(action or self.method.lower()).replace('_', ' ').capitalize()} {article} {noun}"

    def _open_to_anyone(self) -> bool:
        return all(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())

    def _error_codes(self, operation: dict) -> list[str]:
        codes = set()
        if not self._open_to_anyone():
            codes |= {"401", "403"}
        params = operation.get("parameters", [])
        if any(p["in"] == "path" for p in params) or any(p["name"] == "page" for p in params):
            codes.add("404")  # no such object, or a page past the end
        if "requestBody" in operation or any(p["in"] == "query" and p["name"] != "page" for p in params):
            codes.add("400")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes |= {"400", "409"}
        if self.method == "POST" and self._open_to_anyone():
            codes.discard("409")
        # DRF's throttles, or a login door that django-axes locks (accounts.throttling).
        if self.view.get_throttles() or getattr(self.view, "locks_out_failed_logins", False):
            codes.add("429")
        return sorted(codes)

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        error_ref = self.resolve_serializer(ErrorSerializer, "response").ref
        # DRF renders an error with the renderer it negotiated: JSON, or JSON-LD where that is
        # the view's first renderer (the DCAT views).
        error_media_types = [r.media_type for r in self.view.get_renderers() if "json" in r.media_type]
        responses = operation["responses"]
        for code in self._error_codes(operation):
            responses.setdefault(code, {})
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                response["content"] = {media_type: {"schema": error_ref} for media_type in error_media_types}
                response["description"] = response.get("description") or ERROR_REASONS.get(
                    code, HTTPStatus(int(code)).phrase)
            elif not response.get("description"):
                response["description"] = HTTPStatus(int(code)).phrase
        operation["responses"] = dict(sorted(responses.items()))
        if self._open_to_anyone():
            operation["security"] = [{}]  # no credentials needed (the token endpoint takes them in its body)
        return operation


def add_error_field_messages(result, generator, request, public):
    """Postprocessing hook: an `Error` may carry field messages beside `detail`."""
    error = result.get("components", {}).get("schemas", {}).get("Error")
    if error is not None:
        error["additionalProperties"] = _error_schema_extension()
    return result
