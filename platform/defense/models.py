"""Risk alerts and the thresholds that raise them. Only defense.actions writes these."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from catalog.models import Dataset


class AlertKind(models.TextChoices):
    DOWNLOAD_BURST = "download_burst", _("下载突增")
    SIMILAR_REQUESTS = "similar_requests", _("跨组织近似申请")
    BUDGET_HIGH = "budget_high", _("隐私预算消耗过高")
    LICENCE_EXPIRING = "licence_expiring", _("许可即将到期")
    FOREIGN_ACCESS = "foreign_access", _("许可外组织访问")
    LEAK_TRACED = "leak_traced", _("泄露溯源命中")


class Severity(models.TextChoices):
    INFO = "info", _("提示")
    WARNING = "warning", _("警告")
    CRITICAL = "critical", _("严重")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("待处理")
    ACKNOWLEDGED = "acknowledged", _("已处理")


class Alert(models.Model):
    kind = models.CharField(_("类型"), max_length=30, choices=AlertKind.choices)
    severity = models.CharField(_("级别"), max_length=10, choices=Severity.choices)
    status = models.CharField(_("状态"), max_length=20, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    # The bureau whose stewards must act, and what the alert is about.
    bureau = models.ForeignKey(Organisation, verbose_name=_("负责局"), on_delete=models.PROTECT, related_name="alerts")
    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, null=True, blank=True)
    organisation = models.ForeignKey(
        Organisation, verbose_name=_("相关组织"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    licence = models.ForeignKey(
        "access.Licence", verbose_name=_("数据许可"), on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    subject = models.CharField(_("对象"), max_length=200)
    # Stored untranslated: the message id (gettext_noop) and its placeholders' values;
    # message_text() says it in the reader's language.
    message = models.TextField(_("说明"))
    message_args = models.JSONField(_("说明参数"), default=dict, blank=True)
    detail = models.JSONField(default=dict)
    licence_suspended = models.BooleanField(_("已自动暂停许可"), default=False)
    emailed_to = models.JSONField(default=list)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(_("处理说明"), blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("风险告警")
        verbose_name_plural = _("风险告警")
        indexes = [models.Index(fields=["kind", "subject", "status"], name="alert_open_lookup")]

    def __str__(self) -> str:
        return f"{self.severity} {self.kind} {self.subject}"

    def message_text(self) -> str:
        """The message in the active language, its placeholders filled in."""
        try:
            return gettext(self.message) % self.message_args if self.message_args else gettext(self.message)
        except (KeyError, TypeError, ValueError):  # a catalogue out of step with the stored values
            return self.message


class DefensePolicy(models.Model):
    """A bureau's thresholds. Without a row the defaults below apply."""

    bureau = models.OneToOneField(Organisation, on_delete=models.PROTECT, related_name="defense_policy")
    burst_downloads = models.PositiveIntegerField(_("突增阈值：窗口内下载次数"), default=5)
    burst_window_minutes = models.PositiveIntegerField(_("突增窗口（分钟）"), default=60)
    similar_window_days = models.PositiveIntegerField(_("近似申请比对窗口（天）"), default=30)
    similar_ratio = models.FloatField(_("近似度阈值"), default=0.85)
    similar_organisations = models.PositiveIntegerField(_("近似申请组织数"), default=2)
    budget_warning = models.FloatField(_("预算警告比例"), default=0.8)
    budget_critical = models.FloatField(_("预算严重比例"), default=0.95)
    expiry_warning_days = models.PositiveIntegerField(_("到期提醒（天）"), default=7)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("防御策略")
        verbose_name_plural = _("防御策略")

    @classmethod
    def for_bureau(cls, bureau: Organisation) -> "DefensePolicy":
        return cls.objects.filter(bureau=bureau).first() or cls(bureau=bureau)
