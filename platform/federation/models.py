"""The districts' federated nodes registered with the platform's standing SuperLink, and
what each node published of the partitions it holds (never a row). Only federation.actions
writes these; whether a node is online, and when it was last in contact, is the SuperLink's
to say (federation.live)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from catalog.models import Dataset


class NodeStatus(models.TextChoices):
    REGISTERED = "registered", _("已注册")
    REVOKED = "revoked", _("已吊销")


class DistrictNode(models.Model):
    organisation = models.ForeignKey(Organisation, verbose_name=_("数据持有方"), on_delete=models.PROTECT,
                                     related_name="nodes")
    name = models.SlugField(_("节点名称"), max_length=60, unique=True)
    public_key = models.TextField(_("公钥"), unique=True)  # OpenSSH text, as `init` printed it
    flower_node_id = models.CharField(_("Flower 节点 ID"), max_length=40, unique=True)
    status = models.CharField(_("状态"), max_length=20, choices=NodeStatus.choices, default=NodeStatus.REGISTERED)
    device = models.CharField(_("设备"), max_length=200, blank=True)  # cpu, or cuda:<GPU>, as the node reports it
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    registered_at = models.DateTimeField(auto_now_add=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("联邦节点")
        verbose_name_plural = _("联邦节点")

    def __str__(self) -> str:
        return self.name


class NodePartition(models.Model):
    """What a node published of its partition of a dataset: the catalog's part."""

    node = models.ForeignKey(DistrictNode, verbose_name=_("节点"), on_delete=models.PROTECT, related_name="partitions")
    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT,
                                related_name="node_partitions")
    units = models.PositiveIntegerField(_("单元数"))
    kinds = models.JSONField(_("单元类型"), default=dict)
    fields = models.JSONField(_("字段"), default=list)
    cells = models.JSONField(_("覆盖格网"), default=list)  # coarse (corpora.store.COVER_LEVEL)
    cell_level = models.PositiveSmallIntegerField(_("格网层级"))
    neighbourhoods = models.JSONField(_("街道"), default=list)  # the one-hot vocabulary: public place names
    sha256 = models.CharField(_("哈希"), max_length=64)  # of the node's partition file, which stays there
    mock = models.JSONField(_("模拟数据"), default=list)  # synthetic rows made from the schema
    published_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "node"]
        constraints = [models.UniqueConstraint(fields=["node", "dataset"], name="one_partition_per_node")]
        verbose_name = _("节点数据分区")
        verbose_name_plural = _("节点数据分区")
