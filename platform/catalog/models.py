"""Datasets the bureaus own. Only catalog.actions writes these."""
from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from kernel.i18n import localized


class DataClass(models.TextChoices):
    OPEN = "open", _("开放")
    CONDITIONAL = "conditional", _("有条件开放")
    COMPUTE_ONLY = "compute_only", _("可用不可见")


class Theme(models.TextChoices):
    BUILDINGS = "buildings", _("建筑")
    INFRASTRUCTURE = "infrastructure", _("市政设施")
    LAND_USE = "land_use", _("用地")
    TRANSPORT = "transport", _("交通")
    ENVIRONMENT = "environment", _("环境")
    OTHER = "other", _("其他")


class UnescapedJSONEncoder(DjangoJSONEncoder):
    """Keeps Chinese as text in the stored JSON (not \\u escapes), so that a text search
    over the column (`keywords__icontains`) finds it on SQLite as on PostgreSQL."""

    def __init__(self, *args, **kwargs):
        kwargs["ensure_ascii"] = False
        super().__init__(*args, **kwargs)


class HeldBy(models.TextChoices):
    BUREAU = "bureau", _("数据局")
    DISTRICTS = "districts", _("各区节点")


class Dataset(models.Model):
    slug = models.SlugField(_("标识"), max_length=80, unique=True)
    title = models.CharField(_("标题"), max_length=200)
    title_en = models.CharField(_("英文标题"), max_length=200, blank=True)
    description = models.TextField(_("描述"), blank=True)
    description_en = models.TextField(_("英文描述"), blank=True)
    theme = models.CharField(_("主题"), max_length=20, choices=Theme.choices, default=Theme.OTHER)
    district = models.CharField(_("行政区"), max_length=100, blank=True)  # a name or code, e.g. 黄浦区
    keywords = models.JSONField(_("关键词"), default=list, blank=True, encoder=UnescapedJSONEncoder)
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
    # Who holds the rows: the bureau (the platform stores its corpus versions), or its
    # districts (each district's node keeps its own partition; the platform stores none).
    held_by = models.CharField(_("数据存放"), max_length=20, choices=HeldBy.choices, default=HeldBy.BUREAU)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = _("数据集")
        verbose_name_plural = _("数据集")

    def __str__(self) -> str:
        return self.local_title

    @property
    def local_title(self) -> str:
        """The title in the reader's language: the English title in English, where there is one."""
        return localized(self.title, self.title_en)

    @property
    def local_description(self) -> str:
        return localized(self.description, self.description_en)


class CatalogGeneration(models.Model):
    """One row: a value that every change to what the catalogue shows replaces, in the
    changing transaction (discovery.answers). The catalogue's shared answers are kept under it,
    so a reader who sees the change never gets an answer from before it."""

    value = models.BigIntegerField()

    class Meta:
        verbose_name = _("目录版本号")
        verbose_name_plural = _("目录版本号")
