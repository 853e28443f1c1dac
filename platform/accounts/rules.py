"""Who may manage organisations and users (kernel.roles has the role primitives every app's
rules share, and who uses the Django admin)."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from kernel.roles import Role, reads_everything, require_role


def check_manage_accounts(user) -> None:
    require_role(user, Role.ADMIN, doing=_("managing organisations and users"))


def check_unlock_login(user) -> None:
    require_role(user, Role.STEWARD, Role.ADMIN, doing=_("unlocking a locked-out login"))


def visible_users(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)
