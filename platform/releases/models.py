"""Release policies and releases. Only releases.actions writes these."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from catalog.models import Dataset
from corpora.models import CorpusVersion
from progress.models import TaskProgress


class ReleasePolicy(models.Model):
    """A versioned policy: editing one makes the next version, so a release names exactly
    the rules it was built with."""

    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, related_name="policies")
    version = models.PositiveIntegerField(_("版本"))
    spec = models.JSONField(_("规则"))
    sha256 = models.CharField(max_length=64)  # of the canonical JSON spec
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="unique_policy_version")]
        verbose_name = _("发布规则")
        verbose_name_plural = _("发布规则")

    def __str__(self) -> str:
        return gettext("%(dataset)s 发布规则 v%(version)s") % {"dataset": self.dataset.slug, "version": self.version}


class ReleaseStatus(models.TextChoices):
    BUILDING = "building", _("生成中")
    BUILT = "built", _("待发布")
    FAILED = "failed", _("失败")
    PUBLISHED = "published", _("已发布")


class Release(models.Model):
    corpus = models.ForeignKey(CorpusVersion, verbose_name=_("数据版本"), on_delete=models.PROTECT, related_name="releases")
    policy = models.ForeignKey(ReleasePolicy, verbose_name=_("发布规则"), on_delete=models.PROTECT, related_name="releases")
    status = models.CharField(_("状态"), max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.BUILDING)
    # The per-release key (pseudonyms, shift, fingerprints), Fernet-encrypted under MILIAO_MASTER_KEY.
    key_encrypted = models.TextField()
    report = models.JSONField(_("报告"), null=True, blank=True)
    outputs = models.JSONField(_("输出"), default=dict)  # format -> {path, bytes, sha256}
    task = models.ForeignKey(TaskProgress, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("数据发布")
        verbose_name_plural = _("数据发布")

    def __str__(self) -> str:
        return gettext("发布 #%(release)s · %(corpus)s") % {"release": self.pk, "corpus": self.corpus}
