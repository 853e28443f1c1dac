"""The project's own middleware: what a view lets through becomes the site's answer, once for
every app (the pages themselves are portal.errors)."""
from __future__ import annotations

from kernel.errors import ActionError
from kernel.web import is_api
from portal import errors


class MethodNotAllowedPageMiddleware:
    """A portal view that only takes POST (`require_POST`) answers GET with an empty 405;
    a person who followed or typed the address gets the site's page instead, with the same
    status and Allow header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 405 or is_api(request) or response.content:
            return response
        return errors.method_not_allowed(request, response)


class ActionErrorPageMiddleware:
    """A view lets an action's or a rule's error through, and the visitor gets the site's
    page for it with the reason: `Refused` the 403 page, `Conflict` 409, `InvalidInput` 400
    (JSON under /api/). One place for what each view used to write itself (`except Refused:
    raise PermissionDenied`). A view that shows refusals on its own page (`except ActionError`,
    as a message beside the form) re-raises `Refused` to come here. The API's DRF views answer
    through DRF's exception handler (miliao.api) and never reach this."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, ActionError):
            return errors.action_error(request, exception)
        return None
