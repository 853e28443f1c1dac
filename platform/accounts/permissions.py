"""Every permission rule of the platform, in one place.

`check_*` functions raise Refused with the reason a user would need to read;
actions call them before they write, so a rule holds whatever calls the action.
`visible_*` functions scope querysets for reads. Views use both and decide
nothing themselves.
"""
from __future__ import annotations

from django.db.models import Q, QuerySet
from rest_framework import permissions as drf_permissions

from miliao.errors import Refused

from .models import OrganisationKind, Role


def role_of(user) -> str | None:
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


def allowed(check, *args) -> bool:
    """Whether a check_* rule passes, for templates that show or hide a button."""
    try:
        check(*args)
    except Refused:
        return False
    return True


def _require_role(user, *roles: str, doing: str) -> None:
    role = role_of(user)
    if role is None:
        raise Refused("log in first")
    if role not in roles:
        names = ", ".join(str(Role(r).label) for r in roles)
        raise Refused(f"{doing} needs the role {names}; you are {Role(role).label}")


# --- organisations and users ---------------------------------------------------


def check_manage_accounts(user) -> None:
    _require_role(user, Role.ADMIN, doing="managing organisations and users")


def visible_users(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)


# --- datasets ------------------------------------------------------------------


def check_register_dataset(user, owner) -> None:
    _require_role(user, Role.STEWARD, doing="registering a dataset")
    if owner.kind != OrganisationKind.BUREAU:
        raise Refused(f"datasets are owned by a bureau; {owner} is not one")
    if owner.pk != user.organisation_id:
        raise Refused(f"stewards register datasets for their own bureau only, not for {owner}")


def check_manage_dataset(user, dataset) -> None:
    _require_role(user, Role.STEWARD, doing="changing a dataset")
    if dataset.owner_id != user.organisation_id:
        raise Refused(f"dataset {dataset.slug} belongs to {dataset.owner}, not to your bureau")


# --- applications ----------------------------------------------------------------


def check_submit_application(user, dataset) -> None:
    _require_role(user, Role.APPLICANT, doing="applying for data")
    if user.organisation_id is None:
        raise Refused("you belong to no organisation, so you cannot apply")


def check_decide_application(user, application) -> None:
    _require_role(user, Role.STEWARD, doing="deciding an application")
    if application.dataset.owner_id != user.organisation_id:
        raise Refused(
            f"only stewards of {application.dataset.owner} decide applications for "
            f"{application.dataset.slug}"
        )
    # Separation of duties: a bureau never approves its own request.
    if application.organisation_id == user.organisation_id:
        raise Refused(
            "separation of duties: a steward cannot decide an application from their own "
            "organisation"
        )


def visible_applications(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    own = Q(organisation_id=user.organisation_id)
    if has_role(user, Role.STEWARD):
        return qs.filter(own | Q(dataset__owner_id=user.organisation_id))
    return qs.filter(own)


# --- releases ----------------------------------------------------------------------


def visible_releases(user, qs: QuerySet) -> QuerySet:
    """Published releases are for everyone; unpublished ones for their bureau and auditors."""
    if reads_everything(user):
        return qs
    published = Q(status="published")
    if has_role(user, Role.STEWARD):
        return qs.filter(published | Q(corpus__dataset__owner_id=user.organisation_id))
    return qs.filter(published)


# --- provenance events and tasks -------------------------------------------------


def check_view_events(user) -> None:
    _require_role(
        user, Role.AUDITOR, Role.ADMIN, Role.STEWARD, doing="reading the provenance event log"
    )


def check_verify_events(user) -> None:
    _require_role(user, Role.AUDITOR, Role.ADMIN, doing="verifying the provenance event log")


def visible_tasks(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)


# --- Django admin ------------------------------------------------------------------


def can_use_admin(user) -> bool:
    return has_role(user, Role.STEWARD, Role.ADMIN)


# --- DRF --------------------------------------------------------------------------


class AuditorsReadOnly(drf_permissions.BasePermission):
    """Logged-in users only; auditors may not use unsafe methods unless a view allows it."""

    message = "auditors read everything and change nothing"

    def has_permission(self, request, view) -> bool:
        if role_of(request.user) is None:
            return False
        if request.method in drf_permissions.SAFE_METHODS:
            return True
        if getattr(view, "auditors_may_post", False):
            return True
        return not has_role(request.user, Role.AUDITOR)
