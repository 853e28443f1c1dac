"""Django admin: every model is registered; who may do what is asked of the apps' rules,
and every save goes through an action that records an event."""
from __future__ import annotations

from django.contrib import admin

from kernel.admin import ReadOnlyModelAdmin

from . import actions
from .models import Anchor, AnchoringState, ChainRegistry, LineageEvent, LineageLink


class RecordedModelAdmin(ReadOnlyModelAdmin):
    """Read-only for stewards and admins unless `may_edit` allows; never deletes; an edit is
    saved through an action that records an event."""

    def save_model(self, request, obj, form, change):
        actions.save_from_admin(
            actor=request.user, obj=obj, changed=list(form.changed_data), adding=not change
        )


@admin.register(LineageEvent)
class LineageEventAdmin(RecordedModelAdmin):
    list_display = ["seq", "event_type", "actor", "subject", "recorded_at", "short_hash"]
    list_filter = ["event_type"]
    search_fields = ["subject", "actor", "event_type", "hash"]
    ordering = ["-seq"]

    @admin.display(description="hash")
    def short_hash(self, obj) -> str:
        return obj.hash[:16] + "…"


@admin.register(LineageLink)
class LineageLinkAdmin(RecordedModelAdmin):
    list_display = ["seq", "subject", "source"]
    search_fields = ["subject", "source"]


@admin.register(ChainRegistry)
class ChainRegistryAdmin(RecordedModelAdmin):
    list_display = ["address", "chain_id", "deployed_block", "created_at"]


@admin.register(Anchor)
class AnchorAdmin(RecordedModelAdmin):
    list_display = ["first_seq", "last_seq", "status", "block_number", "confirmations", "tx_hash", "attempts"]
    list_filter = ["status"]
    exclude = ["page_roots"]
    ordering = ["-first_seq"]


@admin.register(AnchoringState)
class AnchoringStateAdmin(RecordedModelAdmin):
    list_display = ["failures", "next_attempt_at", "last_success_at", "last_error"]
