from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import BudgetEntry, PrivacyBudget


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(RecordedModelAdmin):
    """Read-only: budgets change through grants, spends and refunds, each with its event."""

    list_display = ["pk", "organisation", "dataset", "epsilon_spent", "epsilon_total", "delta", "updated_at"]
    list_filter = ["dataset"]


@admin.register(BudgetEntry)
class BudgetEntryAdmin(RecordedModelAdmin):
    list_display = ["pk", "budget", "kind", "epsilon", "job", "actor", "event_seq", "created_at"]
    list_filter = ["kind"]
    search_fields = ["job", "reason"]
