"""API plumbing shared by every app: the error mapping (the JSON 404 of API paths that match
nothing is kernel.web.not_found)."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from kernel.errors import ActionError


def exception_handler(exc, context):
    """Turn every error into the API's one error shape (the `Error` schema): an object with
    `detail` (the reason), or with each wrong field named and its messages."""
    if isinstance(exc, ActionError):
        return Response(exc.as_data(), status=exc.status)
    if isinstance(exc, ValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}
        return Response(data, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):  # ValidationError("...") without a field
        response.data = {"detail": " ".join(str(message) for message in response.data)}
    return response
