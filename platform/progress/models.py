"""Task progress rows. Only progress.actions writes these."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _


class TaskStatus(models.TextChoices):
    QUEUED = "queued", _("排队中")
    RUNNING = "running", _("运行中")
    SUCCEEDED = "succeeded", _("已完成")
    FAILED = "failed", _("失败")


FINISHED = {TaskStatus.SUCCEEDED, TaskStatus.FAILED}

# Stages that Django-free code reports (the release pipeline): marked here for translation.
PIPELINE_STAGES = (
    gettext_noop("finding sensitive zones"),
    gettext_noop("declassifying and counting classes"),
    gettext_noop("desensitizing, shifting, lightening"),
    gettext_noop("writing GeoPackage and GeoJSON"),
    gettext_noop("done"),
)


class TaskProgress(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("任务类型"), max_length=80)
    # Stored untranslated, as its message id (gettext_noop) and its placeholders' values;
    # label_text() says it in the reader's language.
    label = models.CharField(_("说明"), max_length=200)
    label_args = models.JSONField(_("说明参数"), default=dict, blank=True)
    status = models.CharField(
        _("状态"), max_length=20, choices=TaskStatus.choices, default=TaskStatus.QUEUED
    )
    percent = models.FloatField(_("进度 %"), default=0.0)
    # The stage is stored untranslated, as its message id (gettext_noop) and the values of its
    # named placeholders; stage_text() says it in the language of whoever reads it.
    stage = models.CharField(_("阶段"), max_length=200, blank=True)
    stage_args = models.JSONField(_("阶段参数"), default=dict, blank=True)
    error = models.TextField(_("错误"), blank=True)
    result = models.JSONField(_("结果"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    # Who runs it (the Celery worker's node name, or host:pid when run inline) and its last
    # sign of life: the recovery (progress.recovery) fails a running task whose worker died.
    worker = models.CharField(_("执行者"), max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(_("最近心跳"), null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("发起人"),
        on_delete=models.PROTECT,
        related_name="tasks",
    )
    organisation = models.ForeignKey(
        "accounts.Organisation",
        verbose_name=_("组织"),
        on_delete=models.PROTECT,
        related_name="tasks",
        null=True,
        blank=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("任务进度")
        verbose_name_plural = _("任务进度")

    def label_text(self) -> str:
        """The label in the active language, its placeholders filled in."""
        try:
            return gettext(self.label) % self.label_args if self.label_args else gettext(self.label)
        except (KeyError, TypeError, ValueError):  # a catalogue out of step with the stored values
            return self.label

    def stage_text(self) -> str:
        """The stage in the active language, its placeholders filled in."""
        if not self.stage:
            return ""
        text = gettext(self.stage)
        try:
            return text % self.stage_args if self.stage_args else text
        except (KeyError, TypeError, ValueError):  # a catalogue out of step with the stored values
            return self.stage

    def __str__(self) -> str:
        return f"{self.label} ({self.get_status_display()}, {self.percent:.0f}%)"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
