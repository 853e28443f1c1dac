"""The Django admin's base for every model: stewards and admins read; nobody deletes; a model
whose admin allows edits saves them through its app's action (provenance.admin's
RecordedModelAdmin, which records the event)."""
from __future__ import annotations

from django.contrib import admin

from .roles import can_use_admin


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Read-only for stewards and admins unless `may_edit` allows; never deletes."""

    def may_edit(self, user, obj=None) -> bool:
        return False

    def has_module_permission(self, request) -> bool:
        return can_use_admin(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return can_use_admin(request.user)

    def has_add_permission(self, request) -> bool:
        return can_use_admin(request.user) and self.may_edit(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return can_use_admin(request.user) and self.may_edit(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
