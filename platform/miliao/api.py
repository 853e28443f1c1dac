"""API plumbing shared by every app: error mapping, and JSON for API paths that match nothing."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from kernel.errors import ActionError

API_PREFIX = "/api/"


def is_api(request) -> bool:
    """Whether a request is the API's (JSON answers) rather than a page's (HTML)."""
    return request.path.startswith(API_PREFIX)


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


@csrf_exempt  # answers every method alike and changes nothing: no CSRF page before the 404
def not_found(request, *args, **kwargs):
    """A path under /api/ that names no operation: a JSON 404 in the `Error` shape, not a page."""
    # DRF's own words for a 404 (translated by DRF's catalogue), as every other API 404 says.
    return JsonResponse({"detail": str(NotFound.default_detail)}, status=status.HTTP_404_NOT_FOUND)
