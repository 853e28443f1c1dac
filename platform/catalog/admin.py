from django.contrib import admin

from accounts import permissions
from provenance.admin import RecordedModelAdmin

from .models import Dataset


@admin.register(Dataset)
class DatasetAdmin(RecordedModelAdmin):
    list_display = ["slug", "title", "data_class", "owner"]
    list_filter = ["data_class", "owner"]
    search_fields = ["slug", "title", "title_en"]
    # Registration goes through the API or the portal (register_dataset); stewards of the
    # owning bureau fix descriptions and holders here. Slug, class and owner stay fixed.
    readonly_fields = ["slug", "data_class", "owner"]

    def may_edit(self, user, obj=None) -> bool:
        return obj is not None and permissions.allowed(permissions.check_manage_dataset, user, obj)
