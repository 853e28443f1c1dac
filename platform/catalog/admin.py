from django.contrib import admin

from kernel import roles
from provenance.admin import RecordedModelAdmin

from . import rules
from .models import CatalogGeneration, Dataset


@admin.register(Dataset)
class DatasetAdmin(RecordedModelAdmin):
    list_display = ["slug", "title", "data_class", "theme", "district", "owner"]
    list_filter = ["data_class", "theme", "owner"]
    search_fields = ["slug", "title", "title_en", "district"]
    # Registration goes through the API or the portal (register_dataset); stewards of the
    # owning bureau fix descriptions, district and holders here. Slug, class and owner stay
    # fixed; theme and keywords change through the API (PATCH), whose action
    # (update_dataset_metadata) checks them.
    readonly_fields = ["slug", "data_class", "owner", "theme", "keywords", "held_by"]  # held_by: federation.actions

    def may_edit(self, user, obj=None) -> bool:
        return obj is not None and roles.allowed(rules.check_manage_dataset, user, obj)


@admin.register(CatalogGeneration)
class CatalogGenerationAdmin(admin.ModelAdmin):
    """The catalogue's generation (discovery.answers), for reading: only changes to the
    catalogue replace it."""

    list_display = ["value"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
