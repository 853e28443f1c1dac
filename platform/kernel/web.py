"""Which door a request came through: the API (JSON answers) or a page (HTML); and the API's
JSON 404 for a path that names no operation."""
from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import NotFound

API_PREFIX = "/api/"


def is_api(request) -> bool:
    """Whether a request is the API's (JSON answers) rather than a page's (HTML)."""
    return request.path.startswith(API_PREFIX)


@csrf_exempt  # answers every method alike and changes nothing: no CSRF page before the 404
def not_found(request, *args, **kwargs):
    """A path under /api/ that names no operation: a JSON 404 in the `Error` shape, not a page."""
    # DRF's own words for a 404 (translated by DRF's catalogue), as every other API 404 says.
    return JsonResponse({"detail": str(NotFound.default_detail)}, status=status.HTTP_404_NOT_FOUND)
