"""API plumbing shared by every app: error mapping."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ActionError


def exception_handler(exc, context):
    """Turn action errors into JSON that names the field or the reason."""
    if isinstance(exc, ActionError):
        return Response(exc.as_data(), status=exc.status)
    if isinstance(exc, ValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(data, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
