"""Privacy budgets and their entries. Only budgets.actions writes these.

Amounts are DecimalFields (NUMERIC on PostgreSQL), not floats and not integer micro-ε:
exact to EPSILON_PLACES places, and readable as they are in the admin, the API and SQL.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from catalog.models import Dataset

from .amounts import DELTA_DIGITS, DELTA_PLACES, EPSILON_DIGITS, EPSILON_PLACES


def _epsilon_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=EPSILON_DIGITS, decimal_places=EPSILON_PLACES, **kwargs)


class PrivacyBudget(models.Model):
    """(ε_total, δ) for one organisation on one dataset. Grants raise ε_total; jobs spend ε."""

    organisation = models.ForeignKey(
        Organisation, verbose_name=_("组织"), on_delete=models.PROTECT, related_name="privacy_budgets"
    )
    dataset = models.ForeignKey(
        Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, related_name="privacy_budgets"
    )
    epsilon_total = _epsilon_field(_("ε 总额"), default=Decimal(0))
    epsilon_spent = _epsilon_field(_("已用 ε"), default=Decimal(0))
    delta = models.DecimalField("δ", max_digits=DELTA_DIGITS, decimal_places=DELTA_PLACES)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset__slug", "organisation__code"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "dataset"], name="budget_one_per_organisation_dataset"),
            # The last line of defence: even a writer that skips the actions cannot overspend.
            models.CheckConstraint(
                condition=Q(epsilon_spent__gte=0) & Q(epsilon_spent__lte=F("epsilon_total")),
                name="budget_spent_within_total",
            ),
        ]
        verbose_name = _("隐私预算")
        verbose_name_plural = _("隐私预算")

    def __str__(self) -> str:
        return f"{self.organisation} · {self.dataset} · ε {self.epsilon_spent}/{self.epsilon_total}"

    @property
    def epsilon_remaining(self) -> Decimal:
        return self.epsilon_total - self.epsilon_spent


class EntryKind(models.TextChoices):
    GRANT = "grant", _("授予")
    SPEND = "spend", _("消耗")
    REFUND = "refund", _("退还")


class BudgetEntry(models.Model):
    """One grant, spend or refund, written with its lineage event (`event_seq`)."""

    budget = models.ForeignKey(
        PrivacyBudget, verbose_name=_("隐私预算"), on_delete=models.PROTECT, related_name="entries"
    )
    kind = models.CharField(_("类型"), max_length=10, choices=EntryKind.choices)
    epsilon = _epsilon_field("ε")
    job = models.CharField(_("任务"), max_length=200, blank=True)  # a subject: "sandbox.job:12"
    reason = models.CharField(_("用途"), max_length=500, blank=True)
    actor = models.ForeignKey(  # None: the platform, acting for a job
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作者"),
        on_delete=models.PROTECT,
        related_name="budget_entries",
        null=True,
        blank=True,
    )
    refund_of = models.ForeignKey(
        "self", verbose_name=_("退还的消耗"), on_delete=models.PROTECT, related_name="refunds", null=True, blank=True
    )
    event_seq = models.BigIntegerField(_("事件序号"), unique=True)
    created_at = models.DateTimeField(_("时间"), default=timezone.now)

    class Meta:
        ordering = ["budget", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(epsilon__gt=0), name="budget_entry_epsilon_positive"),
            models.CheckConstraint(
                condition=Q(kind=EntryKind.REFUND, refund_of__isnull=False)
                | (~Q(kind=EntryKind.REFUND) & Q(refund_of__isnull=True)),
                name="budget_entry_refund_points_at_spend",
            ),
        ]
        verbose_name = _("预算记录")
        verbose_name_plural = _("预算记录")

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} ε {self.epsilon} {self.job}".rstrip()
