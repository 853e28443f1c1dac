"""Datasets the bureaus own. Only catalog.actions writes these."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation


class DataClass(models.TextChoices):
    OPEN = "open", _("开放")
    CONDITIONAL = "conditional", _("有条件开放")
    COMPUTE_ONLY = "compute_only", _("可用不可见")


class Dataset(models.Model):
    slug = models.SlugField(_("标识"), max_length=80, unique=True)
    title = models.CharField(_("标题"), max_length=200)
    title_en = models.CharField(_("英文标题"), max_length=200, blank=True)
    description = models.TextField(_("描述"), blank=True)
    data_class = models.CharField(_("数据类别"), max_length=20, choices=DataClass.choices)
    owner = models.ForeignKey(
        Organisation,
        verbose_name=_("所属局"),
        on_delete=models.PROTECT,
        related_name="owned_datasets",
    )
    # District bureaus that keep a private partition of this dataset on their own nodes.
    holders = models.ManyToManyField(
        Organisation, verbose_name=_("数据持有方"), related_name="held_datasets", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = _("数据集")
        verbose_name_plural = _("数据集")

    def __str__(self) -> str:
        return self.title
