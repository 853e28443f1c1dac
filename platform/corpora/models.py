"""Versions of a dataset's corpus of spatial units. Only corpora.actions writes these.

The units themselves live in a GeoParquet file per version (columnar, streamed by the
release pipeline); the row here is its catalogue entry and its hash."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from catalog.models import Dataset


class CorpusVersion(models.Model):
    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(_("版本"))
    source = models.CharField(_("来源"), max_length=300)  # file name, or "generator:seed=…"
    source_crs = models.CharField(_("源坐标系"), max_length=100)
    units = models.PositiveIntegerField(_("单元数"))
    kinds = models.JSONField(_("单元类型"), default=dict)  # kind -> count
    extent = models.JSONField(_("范围"), default=list)  # [lon_min, lat_min, lon_max, lat_max]
    # The grid cells at cell_level that the units' boxes touch, sorted (see store.COVER_LEVEL).
    cell_level = models.PositiveSmallIntegerField(_("格网层级"), null=True, blank=True)
    cells = models.JSONField(_("覆盖格网"), default=list)
    fields = models.JSONField(_("字段"), default=list)  # [{"name", "type"}] of the stored file
    sha256 = models.CharField(_("哈希"), max_length=64)  # of the stored GeoParquet
    path = models.CharField(max_length=500)  # relative to MILIAO_STATE_DIR
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="unique_corpus_version")]
        verbose_name = _("数据版本")
        verbose_name_plural = _("数据版本")

    def __str__(self) -> str:
        return f"{self.dataset.slug} v{self.version}"
