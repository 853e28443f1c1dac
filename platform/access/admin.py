from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import Application, Download, LeakFinding, Licence


@admin.register(Application)
class ApplicationAdmin(RecordedModelAdmin):
    """Read-only: decisions are made in the review queue, where separation of duties holds."""

    list_display = [
        "pk",
        "dataset",
        "organisation",
        "applicant",
        "purpose_category",
        "status",
        "submitted_at",
    ]
    list_filter = ["status", "purpose_category", "dataset"]


@admin.register(Licence)
class LicenceAdmin(RecordedModelAdmin):
    """Read-only: licences change through their actions (suspend, revoke, reinstate)."""

    list_display = [
        "pk",
        "release",
        "organisation",
        "status",
        "valid_until",
        "downloads_used",
        "download_limit",
    ]
    list_filter = ["status"]
    exclude = ["fingerprint_key_encrypted"]


@admin.register(Download)
class DownloadAdmin(RecordedModelAdmin):
    list_display = ["pk", "release", "licence", "user", "format", "created_at"]


@admin.register(LeakFinding)
class LeakFindingAdmin(RecordedModelAdmin):
    list_display = ["pk", "file_name", "release", "licence", "recipient", "p_value", "created_at"]
