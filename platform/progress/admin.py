from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import TaskProgress


@admin.register(TaskProgress)
class TaskProgressAdmin(RecordedModelAdmin):
    list_display = ["label", "kind", "status", "percent", "started_by", "created_at"]
    list_filter = ["status", "kind"]
