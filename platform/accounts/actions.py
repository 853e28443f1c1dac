"""State changes for organisations and users; each appends its lineage event."""
from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from kernel.errors import InvalidInput
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of

from . import rules
from .models import ROLE_ORGANISATION_KINDS, Organisation, OrganisationKind, Role, User

_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,59}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,150}$")


def _authorize(actor) -> None:
    # actor None is the platform itself (bootstrap commands, the demo seed).
    if actor is not None:
        rules.check_manage_accounts(actor)


@transaction.atomic(durable=True)
def create_organisation(*, actor, code: str, name: str, kind: str, name_en: str = "") -> Organisation:
    _authorize(actor)
    if not _CODE.match(code or ""):
        raise InvalidInput("code", _("use 2-60 lowercase letters, digits and hyphens"))
    if not (name or "").strip():
        raise InvalidInput("name", _("an organisation needs a name"))
    if kind not in OrganisationKind.values:
        raise InvalidInput("kind", _("must be one of %(organisationkind_values)s")
                                   % {"organisationkind_values": ', '.join(OrganisationKind.values)})
    if Organisation.objects.filter(code=code).exists():
        raise InvalidInput("code", _("an organisation with code %(code)r already exists") % {"code": code})
    if Organisation.objects.filter(name=name.strip()).exists():
        raise InvalidInput("name", _("an organisation named %(name)r already exists") % {"name": name})
    org = Organisation.objects.create(code=code, name=name.strip(), name_en=name_en.strip(), kind=kind)
    record(
        EventType.ACCOUNTS_ORGANISATION_CREATED,
        actor=actor_of(actor),
        subject=subject_of(org),
        payload={"code": org.code, "name": org.name, "kind": org.kind},
    )
    return org


@transaction.atomic(durable=True)
def create_user(
    *,
    actor,
    username: str,
    password: str,
    role: str,
    organisation: Organisation,
    email: str = "",
    display_name: str = "",
) -> User:
    _authorize(actor)
    if not _USERNAME.match(username or ""):
        raise InvalidInput("username", _("use 3-150 letters, digits, '.', '_' or '-'"))
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput("username", _("the username %(username)r is taken") % {"username": username})
    if role not in Role.values:
        raise InvalidInput("role", _("must be one of %(role_values)s")
                                   % {"role_values": ', '.join(Role.values)})
    if organisation.kind not in ROLE_ORGANISATION_KINDS[role]:
        allowed_kinds = ", ".join(str(OrganisationKind(k).label) for k in sorted(ROLE_ORGANISATION_KINDS[role]))
        raise InvalidInput(
            "organisation",
            _("a %(role)s belongs to an organisation of kind %(allowed_kinds)s; %(organisation_code)s is a "
              "%(organisation_kind)s")
            % {"role": Role(role).label,
               "allowed_kinds": allowed_kinds,
               "organisation_code": organisation.code,
               "organisation_kind": organisation.get_kind_display()},
        )
    user = User(
        username=username,
        email=email,
        first_name=display_name[:150],
        role=role,
        organisation=organisation,
        # Stewards and admins use Django admin; what they may do there is still
        # decided by each app's rules.
        is_staff=role in (Role.STEWARD, Role.ADMIN),
    )
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput("password", " ".join(exc.messages)) from exc
    user.set_password(password)
    user.save()
    record(
        EventType.ACCOUNTS_USER_CREATED,
        actor=actor_of(actor),
        subject=subject_of(user),
        payload={"username": user.username, "role": role, "organisation": organisation.code},
    )
    return user


@transaction.atomic(durable=True)
def issue_api_token(*, user: User, rotate: bool = False) -> Token:
    """The user's API token; a new one (the old one stops working) when `rotate`."""
    if rotate:
        Token.objects.filter(user=user).delete()
    token, created = Token.objects.get_or_create(user=user)
    if created:
        # The key itself never enters the log: events are readable by auditors.
        record(
            EventType.ACCOUNTS_API_TOKEN_ROTATED if rotate else EventType.ACCOUNTS_API_TOKEN_ISSUED,
            actor=actor_of(user),
            subject=subject_of(user),
            payload={"key_prefix": token.key[:4]},
        )
    return token


@transaction.atomic(durable=True)
def record_login_lockout(*, username: str, door: str) -> None:
    """A client was locked out after too many failed logins (axes counts and refuses; this
    writes the event). The tried username is kept only when it names an account: a mistyped
    password typed into the username field must not land in a log that auditors read."""
    user = User.objects.filter(username=username).first() if username else None
    record(
        EventType.ACCOUNTS_LOGIN_LOCKED_OUT,
        actor="system",
        subject=subject_of(user) if user is not None else "accounts.user:unknown",
        payload={
            "door": door,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_s": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )


@transaction.atomic(durable=True)
def unlock_login(*, actor, username: str) -> int:
    """Clear a username's failed logins (every client address), ending its lockout; returns
    how many counters were cleared. Stewards and admins may unlock."""
    from axes.utils import reset

    if actor is not None:
        rules.check_unlock_login(actor)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise InvalidInput("username", _("no user is named %(username)r") % {"username": username})
    cleared = reset(username=username)
    if not cleared:
        raise InvalidInput("username", _("%(username)s has no failed logins to clear")
                                       % {"username": username})
    record(
        EventType.ACCOUNTS_LOGIN_UNLOCKED,
        actor=actor_of(actor),
        subject=subject_of(user),
        payload={"counters_cleared": cleared},
    )
    return cleared
