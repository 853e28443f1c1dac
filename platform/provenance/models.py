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
    hash = models.CharField(_("哈希"), max_length=64, unique=True)
    event_type = models.CharField(_("事件类型"), max_length=80, db_index=True)
    actor = models.CharField(_("操作者"), max_length=200)
    subject = models.CharField(_("对象"), max_length=200, db_index=True)
    payload = models.TextField(_("内容(规范 JSON)"))
    recorded_at = models.DateTimeField(_("时间"))

    class Meta:
        ordering = ["seq"]
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
        )
