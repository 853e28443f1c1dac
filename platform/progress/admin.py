from django.contrib import admin

from kernel.admin import ReadOnlyModelAdmin

from .models import TaskProgress


@admin.register(TaskProgress)
class TaskProgressAdmin(ReadOnlyModelAdmin):
    list_display = ["label", "kind", "status", "percent", "started_by", "created_at"]
    list_filter = ["status", "kind"]
