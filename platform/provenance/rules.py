"""Who reads and verifies the provenance event log."""
from __future__ import annotations

from django.utils.translation import gettext as _

from kernel.roles import Role, require_role


def check_view_events(user) -> None:
    require_role(user, Role.AUDITOR, Role.ADMIN, Role.STEWARD, doing=_("reading the provenance event log"))


def check_verify_events(user) -> None:
    require_role(user, Role.AUDITOR, Role.ADMIN, doing=_("verifying the provenance event log"))
