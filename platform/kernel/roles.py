"""The platform's roles and the primitives every app's rules (`<app>/rules.py`) share.

A rule of an app asks `require_role` first, then checks what only that app knows (who owns
the dataset, whose job it is) with that app's own enums. Roles live in the kernel, not in
accounts, because every app's rules use them and accounts itself records provenance events:
below the apps, they close no loop between them.
"""
from __future__ import annotations

from collections.abc import Callable

from django.db import models
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .errors import Refused


class Role(models.TextChoices):
    APPLICANT = "applicant", gettext_lazy("申请方")
    STEWARD = "steward", gettext_lazy("数据管理员")
    DATA_HOLDER = "data_holder", gettext_lazy("数据持有方")
    AUDITOR = "auditor", gettext_lazy("审计员")
    ADMIN = "admin", gettext_lazy("平台管理员")


def role_of(user) -> str | None:
    """The role a user acts in: None for anonymous and inactive users, admin for superusers."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    return user.role


def has_role(user, *roles: str) -> bool:
    return role_of(user) in roles


def reads_everything(user) -> bool:
    """Auditors and admins see every organisation's records."""
    return has_role(user, Role.AUDITOR, Role.ADMIN)


def can_use_admin(user) -> bool:
    """The Django admin (read-only unless a model's admin allows more): stewards and admins."""
    return has_role(user, Role.STEWARD, Role.ADMIN)


def allowed(check: Callable[..., None], *args) -> bool:
    """Whether a check_* rule passes, for templates that show or hide a button."""
    try:
        check(*args)
    except Refused:
        return False
    return True


def require_role(user, *roles: str, doing: str) -> None:
    """Refused unless ``user`` is logged in and acts in one of ``roles``; ``doing`` names the
    action in the refusal ("deciding a job needs the role 数据管理员; you are 申请方")."""
    role = role_of(user)
    if role is None:
        raise Refused(_("log in first"))
    if role not in roles:
        names = ", ".join(str(Role(r).label) for r in roles)
        raise Refused(_("%(doing)s needs the role %(names)s; you are %(role_label)s")
                      % {"doing": doing, "names": names, "role_label": Role(role).label})


def require_login(user) -> None:
    if role_of(user) is None:
        raise Refused(_("log in first"))


def held_or_owned(user, qs: QuerySet, owner_path: str) -> QuerySet:
    """Rows held by the user's organisation; for stewards also those on their bureau's data
    (``owner_path`` leads to the owning bureau); everything for auditors and admins."""
    if role_of(user) is None:
        return qs.none()
    if reads_everything(user):
        return qs
    own = Q(organisation_id=user.organisation_id)
    if has_role(user, Role.STEWARD):
        return qs.filter(own | Q(**{owner_path: user.organisation_id}))
    return qs.filter(own)
