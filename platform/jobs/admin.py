from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import Job, SandboxPolicy, SyftDataset, TrainedModel


@admin.register(Job)
class JobAdmin(RecordedModelAdmin):
    """Read-only: a job changes through its lifecycle's actions, each with its event."""

    list_display = ["pk", "title", "kind", "dataset", "organisation", "status", "epsilon", "epsilon_spent",
                    "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title"]
    # What the job wrote is for the data owner's stewards, on the job page (any steward reaches
    # the admin): the masked log and the checks' findings stay out of it.
    exclude = ["log", "checks"]


@admin.register(TrainedModel)
class TrainedModelAdmin(RecordedModelAdmin):
    list_display = ["pk", "name", "task", "organisation", "sha256", "released_at"]


@admin.register(SyftDataset)
class SyftDatasetAdmin(RecordedModelAdmin):
    list_display = ["pk", "name", "corpus", "owner", "private_rows", "mock_rows", "published_at"]


@admin.register(SandboxPolicy)
class SandboxPolicyAdmin(RecordedModelAdmin):
    """Set on the code-to-data page or with PUT /api/sandbox-policies/<slug>/ (an action)."""

    list_display = ["dataset", "code_outputs", "min_cell_count", "max_output_bytes", "max_memory_mb",
                    "max_cpu_seconds", "max_wall_seconds", "max_processes", "max_disk_mb", "max_files", "max_output_mb",
                    "updated_by", "updated_at"]
