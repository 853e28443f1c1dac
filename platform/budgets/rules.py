"""Who grants, spends and refunds privacy budgets, and who sees them.

`None` as the user is the platform itself, spending or refunding for a job from code that no
request reaches; views pass request.user, which is never None."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from kernel.errors import Refused
from kernel.roles import Role, held_or_owned, require_role


def check_grant_budget(user, organisation, dataset) -> None:
    if user is None:
        return
    require_role(user, Role.STEWARD, doing=_("granting a privacy budget"))
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(dataset_owner)s grant budgets on %(dataset)s")
                      % {"dataset_owner": dataset.owner, "dataset": dataset.slug})
    if organisation.pk == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot grant a budget to their own organisation"))


def check_spend_budget(user, organisation, dataset) -> None:
    if user is None:
        return
    require_role(user, Role.APPLICANT, doing=_("spending a privacy budget"))
    if organisation.pk != user.organisation_id:
        raise Refused(_("a job spends its own organisation's budget, not the one of %(organisation)s")
                      % {"organisation": organisation})


def check_adjust_budget(user, budget) -> None:
    """Refunds: stewards of the dataset's bureau, never on their own organisation's budget."""
    if user is None:
        return
    require_role(user, Role.STEWARD, doing=_("refunding a privacy budget"))
    if budget.dataset.owner_id != user.organisation_id:
        raise Refused(_("only stewards of %(budget_dataset_owner)s adjust budgets on "
                        "%(budget_dataset_slug)s")
                      % {"budget_dataset_owner": budget.dataset.owner,
                         "budget_dataset_slug": budget.dataset.slug})
    if budget.organisation_id == user.organisation_id:
        raise Refused(_("separation of duties: a steward cannot refund their own organisation's budget"))


def visible_budgets(user, qs: QuerySet) -> QuerySet:
    """The budget's organisation, stewards of the dataset's bureau, auditors and admins."""
    return held_or_owned(user, qs, "dataset__owner_id")
