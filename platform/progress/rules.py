"""Whose tracked tasks a user sees."""
from __future__ import annotations

from django.db.models import QuerySet

from kernel.roles import reads_everything


def visible_tasks(user, qs: QuerySet) -> QuerySet:
    if reads_everything(user):
        return qs
    return qs.filter(organisation_id=user.organisation_id)
