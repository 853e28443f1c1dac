"""Granting, spending and refunding privacy budget. Each writes a BudgetEntry and its
lineage event in the same transaction, holding the budget's row lock.

Lock order: a budget's row lock is always taken before the event log's lock (which
provenance.record takes), never after. spend and refund do so; an approving action that
calls grant_budget must call it before it records its own event, or a grant and a spend
on the same budget could each wait for the other.

`actor=None` is the platform itself, spending or refunding for a job from code that no
request reaches.
"""
from __future__ import annotations

import re
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext

from accounts.models import Organisation
from catalog.models import DataClass, Dataset
from kernel.errors import Conflict, InvalidInput
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of

from . import amounts, rules
from .hooks import announce_spend
from .models import BudgetEntry, EntryKind, PrivacyBudget

_SUBJECT = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*:\S{1,120}$")
REASON_MAX = 500


def _subject(value: str, field: str, *, required: bool) -> str:
    value = (value or "").strip()
    if not value and not required:
        return ""
    if not _SUBJECT.match(value):
        raise InvalidInput(field, gettext("name it as a subject such as 'sandbox.job:12', not %(value)r")
                                  % {"value": value})
    return value


def _reason(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput("reason", gettext("say what the ε is for"))
    if len(value) > REASON_MAX:
        raise InvalidInput("reason", gettext("at most %(reason_max)s characters")
                                     % {"reason_max": REASON_MAX})
    return value


def _payload(budget: PrivacyBudget, epsilon: Decimal, **extra) -> dict:
    return {
        "organisation": budget.organisation.code,
        "dataset": budget.dataset.slug,
        "epsilon": amounts.text(epsilon),
        "epsilon_spent": amounts.text(budget.epsilon_spent),
        "epsilon_total": amounts.text(budget.epsilon_total),
        **extra,
    }


def _entry(budget: PrivacyBudget, event, *, actor, kind: str, epsilon: Decimal, job: str, reason: str,
           refund_of: BudgetEntry | None = None) -> BudgetEntry:
    budget.save(update_fields=["epsilon_total", "epsilon_spent", "delta", "updated_at"])
    return BudgetEntry.objects.create(
        budget=budget, kind=kind, epsilon=epsilon, job=job, reason=reason, actor=actor,
        refund_of=refund_of, event_seq=event.seq, created_at=event.recorded_at,
    )


@transaction.atomic  # not durable: it runs inside the approving action's transaction
def grant_budget(
    *, actor, organisation: Organisation, dataset: Dataset, epsilon, delta, source: str
) -> PrivacyBudget:
    """Create the (organisation, dataset) budget, or add ε to the existing one.

    δ is per budget, not spent: a later grant with a different δ keeps the smaller
    (stricter) of the two, so a grant never loosens the guarantee jobs run under.
    `source` is the subject that justified the grant ("access.application:3").
    """
    rules.check_grant_budget(actor, organisation, dataset)
    epsilon = amounts.epsilon(epsilon)
    delta = amounts.delta(delta)
    source = _subject(source, "source", required=True)
    if dataset.data_class == DataClass.OPEN:
        raise InvalidInput("dataset", gettext("%(dataset)s is open: nothing is spent on it, so it has no "
                                              "budget")
                                      % {"dataset": dataset.slug})
    budget, _ = PrivacyBudget.objects.select_for_update().get_or_create(
        organisation=organisation, dataset=dataset, defaults={"delta": delta}
    )
    if budget.epsilon_total + epsilon > amounts.EPSILON_MAX:
        raise InvalidInput(
            "epsilon",
            gettext("the budget would hold ε %(value)s, over the limit %(amounts_epsilon_max)s")
            % {"value": budget.epsilon_total + epsilon, "amounts_epsilon_max": amounts.EPSILON_MAX},
        )
    budget.epsilon_total += epsilon
    budget.delta = min(budget.delta, delta)
    event = record(
        EventType.BUDGETS_GRANTED,
        actor=actor_of(actor),
        subject=subject_of(budget),
        payload=_payload(
            budget, epsilon, delta=amounts.short(budget.delta), delta_granted=amounts.short(delta)
        ),
        inputs=[source, subject_of(dataset)],
    )
    _entry(budget, event, actor=actor, kind=EntryKind.GRANT, epsilon=epsilon, job="", reason=source)
    return budget


@transaction.atomic(durable=True)
def spend(
    *, actor, organisation: Organisation, dataset: Dataset, epsilon, job: str, reason: str
) -> BudgetEntry:
    """Spend ε of the (organisation, dataset) budget for `job`, or refuse and change nothing.

    The budget row stays locked until commit, so concurrent spends queue and each sees
    the balance the one before it left: no interleaving can overspend.
    """
    rules.check_spend_budget(actor, organisation, dataset)
    epsilon = amounts.epsilon(epsilon)
    job = _subject(job, "job", required=False)
    reason = _reason(reason)
    budget = (
        PrivacyBudget.objects.select_for_update(of=("self",))  # not the organisation and dataset rows
        .select_related("organisation", "dataset")
        .filter(organisation=organisation, dataset=dataset)
        .first()
    )
    if budget is None:
        raise Conflict(
            gettext("%(organisation_code)s has no privacy budget on %(dataset)s: remaining ε 0, requested "
                    "ε %(epsilon)s")
            % {"organisation_code": organisation.code,
               "dataset": dataset.slug,
               "epsilon": amounts.short(epsilon)}
        )
    if epsilon > budget.epsilon_remaining:
        message = (gettext("the privacy budget of %(organisation)s on %(dataset)s has remaining ε %(remaining)s "
                           "of %(total)s; requested ε %(epsilon)s for %(job)s") if job
                   else gettext("the privacy budget of %(organisation)s on %(dataset)s has remaining ε "
                                "%(remaining)s of %(total)s; requested ε %(epsilon)s"))
        raise Conflict(message % {"organisation": organisation.code, "dataset": dataset.slug,
                                  "remaining": amounts.short(budget.epsilon_remaining),
                                  "total": amounts.short(budget.epsilon_total),
                                  "epsilon": amounts.short(epsilon), "job": job})
    budget.epsilon_spent += epsilon
    event = record(
        EventType.BUDGETS_SPENT,
        actor=actor_of(actor),
        subject=subject_of(budget),
        payload=_payload(budget, epsilon, reason=reason),
        inputs=[job] if job else [],
    )
    announce_spend(budget)
    return _entry(
        budget, event, actor=actor, kind=EntryKind.SPEND, epsilon=epsilon, job=job, reason=reason
    )


@transaction.atomic(durable=True)
def refund(*, actor, entry: BudgetEntry, epsilon, reason: str) -> BudgetEntry:
    """Give back ε of one spend (a job that failed before it ran, say), at most what that
    spend took less its earlier refunds."""
    budget = (
        PrivacyBudget.objects.select_for_update(of=("self",))
        .select_related("organisation", "dataset")
        .get(pk=entry.budget_id)
    )
    rules.check_adjust_budget(actor, budget)
    epsilon = amounts.epsilon(epsilon)
    reason = _reason(reason)
    spent = BudgetEntry.objects.get(pk=entry.pk)  # read again, under the budget's lock
    if spent.kind != EntryKind.SPEND:
        raise InvalidInput("entry", gettext("only a spend can be refunded; entry #%(spent)s is a "
                                            "%(spent_kind)s")
                                    % {"spent": spent.pk, "spent_kind": spent.get_kind_display()})
    refundable = spent.epsilon - sum((r.epsilon for r in spent.refunds.all()), Decimal(0))
    if epsilon > refundable:
        message = (gettext("spend #%(spent)s of %(job)s has ε %(refundable)s left to refund of ε "
                           "%(spent_epsilon)s; requested ε %(epsilon)s") if spent.job
                   else gettext("spend #%(spent)s has ε %(refundable)s left to refund of ε %(spent_epsilon)s; "
                                "requested ε %(epsilon)s"))
        raise Conflict(message % {"spent": spent.pk, "job": spent.job, "refundable": amounts.short(refundable),
                                  "spent_epsilon": amounts.short(spent.epsilon), "epsilon": amounts.short(epsilon)})
    budget.epsilon_spent -= epsilon
    event = record(
        EventType.BUDGETS_REFUNDED,
        actor=actor_of(actor),
        subject=subject_of(budget),
        payload=_payload(budget, epsilon, reason=reason, refund_of_seq=spent.event_seq),
        inputs=[spent.job] if spent.job else [],
    )
    return _entry(budget, event, actor=actor, kind=EntryKind.REFUND, epsilon=epsilon, job=spent.job,
                  reason=reason, refund_of=spent)
