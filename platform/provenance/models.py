"""The hash-chained provenance event log. Rows are appended by provenance.record only."""
from __future__ import annotations

from datetime import timezone as dt_timezone

from django.db import models
from django.utils.translation import gettext_lazy as _

from ledger.chain import EventRecord


def format_recorded_at(value) -> str:
    """The exact text that is hashed for an event's time: UTC, microseconds, 'Z'."""
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AppendOnlyError(Exception):
    pass


class LineageEvent(models.Model):
    seq = models.BigIntegerField(_("序号"), unique=True)
    prev_hash = models.CharField(_("前序哈希"), max_length=64)
    hash = models.CharField(_("哈希"), max_length=64)
    event_type = models.CharField(_("事件类型"), max_length=80)
    actor = models.CharField(_("操作者"), max_length=200)
    subject = models.CharField(_("对象"), max_length=200)
    payload = models.TextField(_("内容(规范 JSON)"))
    recorded_at = models.DateTimeField(_("时间"))
    # Which canonical JSON the hash is computed over (ledger.chain: 1 is Python's json.dumps,
    # 2 is RFC 8785); written with the event, hashed with it, never changed.
    hash_version = models.PositiveSmallIntegerField(_("哈希版本"))

    class Meta:
        ordering = ["seq"]
        # Declared here rather than with unique=/db_index= on the fields, because on
        # PostgreSQL those also build a LIKE-pattern copy of each index, which nothing
        # queries and which every append would pay for.
        indexes = [
            models.Index(fields=["event_type"], name="lineage_event_type"),
            models.Index(fields=["subject"], name="lineage_event_subject"),
        ]
        constraints = [models.UniqueConstraint(fields=["hash"], name="lineage_event_hash_unique")]
        verbose_name = _("溯源事件")
        verbose_name_plural = _("溯源事件")

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type} {self.subject}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("lineage events are append-only; an event cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("lineage events are append-only; an event cannot be deleted")

    def as_record(self) -> EventRecord:
        return EventRecord(
            seq=self.seq,
            prev_hash=self.prev_hash,
            event_type=self.event_type,
            actor=self.actor,
            subject=self.subject,
            payload=self.payload,
            recorded_at=format_recorded_at(self.recorded_at),
            hash=self.hash,
            version=self.hash_version,
        )


class LineageLink(models.Model):
    """An edge of the lineage graph: event `seq` made `subject` from `source`.

    Written with the event from its payload's "inputs", which the hash covers;
    this table only indexes them so the graph can be walked both ways, and
    verify_lineage checks that it agrees with the verified payloads. No
    foreign key, so a row deleted behind the platform's back is reported, not
    cascaded away.
    """

    seq = models.BigIntegerField(_("事件序号"))
    subject = models.CharField(_("产物"), max_length=200)
    source = models.CharField(_("来源"), max_length=200)

    class Meta:
        verbose_name = _("血缘关系")
        verbose_name_plural = _("血缘关系")
        indexes = [
            models.Index(fields=["subject"], name="lineage_link_subject"),
            models.Index(fields=["source"], name="lineage_link_source"),
        ]
        # Also serves lookups by seq (its leading column).
        constraints = [models.UniqueConstraint(fields=["seq", "source"], name="lineage_link_once")]


class ChainRegistry(models.Model):
    """The provenance registry contract this database anchors to."""

    chain_id = models.BigIntegerField(_("链 ID"))
    address = models.CharField(_("合约地址"), max_length=42)
    deploy_tx = models.CharField(_("部署交易"), max_length=66, blank=True)
    deployed_block = models.BigIntegerField(_("部署区块"), default=0)
    created_at = models.DateTimeField(_("登记时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("链上登记合约")
        verbose_name_plural = _("链上登记合约")
        constraints = [models.UniqueConstraint(fields=["chain_id", "address"], name="registry_once_per_chain")]

    def __str__(self) -> str:
        return f"{self.address} @ chain {self.chain_id}"


class AnchorStatus(models.TextChoices):
    PREPARED = "prepared", _("已成批,待上链")
    SUBMITTED = "submitted", _("已提交,待确认")
    CONFIRMED = "confirmed", _("已上链")


class Anchor(models.Model):
    """A batch of consecutive events whose Merkle root is anchored on the chain.

    The row is written before its transaction is sent, so a crash between
    sending and recording is resolved by finding the root on the chain; the
    contract refuses overlapping ranges, so a batch can never be anchored twice.
    """

    registry = models.ForeignKey(ChainRegistry, on_delete=models.PROTECT, related_name="anchors")
    first_seq = models.BigIntegerField(_("起始序号"), unique=True)
    last_seq = models.BigIntegerField(_("结束序号"), unique=True)
    root = models.CharField(_("默克尔根"), max_length=64, unique=True)
    prev_root = models.CharField(_("前一个根"), max_length=64)
    page_roots = models.BinaryField(_("分页根"))
    status = models.CharField(_("状态"), max_length=16, choices=AnchorStatus.choices, default=AnchorStatus.PREPARED)
    tx_hash = models.CharField(_("交易哈希"), max_length=66, blank=True)
    nonce = models.BigIntegerField(_("nonce"), null=True, blank=True)
    block_number = models.BigIntegerField(_("区块号"), null=True, blank=True)
    block_hash = models.CharField(_("区块哈希"), max_length=66, blank=True)
    confirmations = models.IntegerField(_("确认数"), default=0)
    attempts = models.IntegerField(_("发送次数"), default=0)
    created_at = models.DateTimeField(_("成批时间"), auto_now_add=True)
    submitted_at = models.DateTimeField(_("提交时间"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("上链时间"), null=True, blank=True)

    class Meta:
        ordering = ["first_seq"]
        verbose_name = _("链上锚定")
        verbose_name_plural = _("链上锚定")

    def __str__(self) -> str:
        return f"#{self.first_seq}–{self.last_seq} {self.root[:12]}… ({self.status})"

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1


class AnchoringState(models.Model):
    """One row: how anchoring is going, for backoff and for the lag shown to people."""

    failures = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    @classmethod
    def get(cls) -> "AnchoringState":
        state, _created = cls.objects.get_or_create(pk=1)
        return state
