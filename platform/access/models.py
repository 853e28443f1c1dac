"""Applications, licences, downloads and leak findings. Only access.actions writes these."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from catalog.models import Dataset
from releases.models import Release


class ApplicationStatus(models.TextChoices):
    SUBMITTED = "submitted", _("待审核")
    CHANGES_REQUESTED = "changes_requested", _("待修改")
    APPROVED = "approved", _("已批准")
    REJECTED = "rejected", _("已驳回")


class PurposeCategory(models.TextChoices):
    RESEARCH = "research", _("科研")
    PRODUCT = "product", _("产品研发")
    PLANNING = "planning", _("规划评估")
    PUBLIC_SERVICE = "public_service", _("公共服务")
    OTHER = "other", _("其他")


class Application(models.Model):
    dataset = models.ForeignKey(
        Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, related_name="applications"
    )
    # The release version asked for; null: the dataset's latest published release when approved.
    release = models.ForeignKey(
        Release,
        verbose_name=_("数据发布"),
        on_delete=models.PROTECT,
        related_name="applications",
        null=True,
        blank=True,
    )
    organisation = models.ForeignKey(
        Organisation, verbose_name=_("申请组织"), on_delete=models.PROTECT, related_name="applications"
    )
    applicant = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("申请人"),
        on_delete=models.PROTECT,
        related_name="applications",
    )
    purpose_category = models.CharField(
        _("用途类别"), max_length=20, choices=PurposeCategory.choices, default=PurposeCategory.OTHER
    )
    purpose = models.TextField(_("用途"))
    # Attribute columns asked for, besides those every package carries; empty: all of them.
    fields = models.JSONField(_("字段"), default=list, blank=True)
    # {"bbox": [west, south, east, north]} in CGCS2000 degrees, with "grid_code" when asked
    # for as a grid cell; null: the whole release.
    area = models.JSONField(_("范围"), null=True, blank=True)
    duration_days = models.PositiveIntegerField(_("期限(天)"), default=90)
    people = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("使用人员"), related_name="named_in_applications", blank=True
    )
    status = models.CharField(
        _("状态"), max_length=20, choices=ApplicationStatus.choices, default=ApplicationStatus.SUBMITTED
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("审核人"),
        on_delete=models.PROTECT,
        related_name="reviewed_applications",
        null=True,
        blank=True,
    )
    decision_reason = models.TextField(_("审核意见"), blank=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-pk"]
        verbose_name = _("数据申请")
        verbose_name_plural = _("数据申请")

    def __str__(self) -> str:
        return f"#{self.pk} {self.organisation} → {self.dataset}"


class LicenceStatus(models.TextChoices):
    ACTIVE = "active", _("有效")
    SUSPENDED = "suspended", _("已暂停")
    REVOKED = "revoked", _("已撤销")


class Licence(models.Model):
    """A conditional-class grant. What it allows is its ODRL policy (access.odrl), which the
    download path evaluates; the columns beside it are copies for lists and filters."""

    application = models.OneToOneField(
        Application, verbose_name=_("数据申请"), on_delete=models.PROTECT, related_name="licence"
    )
    release = models.ForeignKey(
        Release, verbose_name=_("数据发布"), on_delete=models.PROTECT, related_name="licences"
    )
    organisation = models.ForeignKey(
        Organisation, verbose_name=_("被许可组织"), on_delete=models.PROTECT, related_name="licences"
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("使用人员"), related_name="licences"
    )
    policy = models.JSONField(_("ODRL 策略"))
    status = models.CharField(
        _("状态"), max_length=20, choices=LicenceStatus.choices, default=LicenceStatus.ACTIVE
    )
    status_reason = models.TextField(_("状态说明"), blank=True)
    valid_from = models.DateTimeField(_("生效时间"))
    valid_until = models.DateTimeField(_("失效时间"))
    download_limit = models.PositiveIntegerField(_("下载次数上限"))
    downloads_used = models.PositiveIntegerField(_("已下载次数"), default=0)
    # The per-licence fingerprint key, Fernet-encrypted under MILIAO_MASTER_KEY.
    fingerprint_key_encrypted = models.TextField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("数据许可")
        verbose_name_plural = _("数据许可")

    def __str__(self) -> str:
        return f"licence #{self.pk} {self.organisation} → release #{self.release_id}"

    @property
    def expired(self) -> bool:
        return self.valid_until < timezone.now()

    def status_reason_text(self) -> str:
        """Why the licence is in its state, in the reader's language where the platform wrote it:
        a suspension by a risk alert is said from the alert; a steward's note is shown as written."""
        alert = next((a for a in self.alerts.all() if a.licence_suspended), None) if self.status_reason else None
        if alert is not None and self.status_reason.startswith(f"alert #{alert.pk}: "):
            return gettext("risk alert #%(alert)s: %(message)s") % {"alert": alert.pk, "message": alert.message_text()}
        return self.status_reason


class Download(models.Model):
    """One package handed out: through a licence, or of an open release (licence null)."""

    licence = models.ForeignKey(
        Licence,
        verbose_name=_("数据许可"),
        on_delete=models.PROTECT,
        related_name="downloads",
        null=True,
        blank=True,
    )
    release = models.ForeignKey(
        Release, verbose_name=_("数据发布"), on_delete=models.PROTECT, related_name="downloads"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("用户"), on_delete=models.PROTECT, related_name="downloads"
    )
    organisation = models.ForeignKey(
        Organisation, verbose_name=_("组织"), on_delete=models.PROTECT, related_name="downloads", null=True
    )
    format = models.CharField(_("格式"), max_length=20)
    nonce = models.CharField(max_length=64, unique=True)  # of the link: each link serves once
    fingerprinted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("下载记录")
        verbose_name_plural = _("下载记录")


class LeakFinding(models.Model):
    """What tracing one leaked file found: the licence (and so the recipient) it came from,
    or nobody when the evidence does not clear the test's threshold."""

    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(_("文件名"), max_length=255)
    file_sha256 = models.CharField(max_length=64)
    leaked_units = models.PositiveIntegerField(_("泄露单元数"))
    release = models.ForeignKey(
        Release,
        verbose_name=_("数据发布"),
        on_delete=models.PROTECT,
        related_name="leak_findings",
        null=True,
        blank=True,
    )
    licence = models.ForeignKey(
        Licence,
        verbose_name=_("数据许可"),
        on_delete=models.PROTECT,
        related_name="leak_findings",
        null=True,
        blank=True,
    )
    recipient = models.ForeignKey(
        Organisation,
        verbose_name=_("接收组织"),
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    p_value = models.FloatField(null=True, blank=True)
    matched_units = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict)  # per release: scores, bound, alpha
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("泄露溯源结果")
        verbose_name_plural = _("泄露溯源结果")
