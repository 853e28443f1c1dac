"""Who registers and revokes district nodes, publishes what a node holds, and sees nodes."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from kernel.errors import Refused
from kernel.roles import Role, role_of


def check_manage_nodes(user) -> None:
    """Registering and revoking district nodes: the platform's stewards."""
    if role_of(user) != Role.STEWARD:
        raise Refused(gettext("only a steward registers or revokes a district's node"))


def check_publish(user, node) -> None:
    """What a node publishes comes from its district: that district's data holders."""
    if role_of(user) != Role.DATA_HOLDER or user.organisation_id != node.organisation_id:
        raise Refused(gettext("only %(organisation)s's data holders publish what node %(node)s holds")
                      % {"organisation": node.organisation, "node": node.name})


def visible_nodes(user, qs: QuerySet) -> QuerySet:
    """Stewards, auditors and admins see every node; a district's data holders its own."""
    role = role_of(user)
    if role in (Role.STEWARD, Role.AUDITOR, Role.ADMIN):
        return qs
    if role == Role.DATA_HOLDER:
        return qs.filter(organisation=user.organisation)
    raise Refused(gettext("district nodes are for stewards and the districts' data holders"))
