from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import Application


@admin.register(Application)
class ApplicationAdmin(RecordedModelAdmin):
    """Read-only: decisions are made in the review queue, where separation of duties holds."""

    list_display = ["pk", "dataset", "organisation", "applicant", "status", "submitted_at"]
    list_filter = ["status", "dataset"]
