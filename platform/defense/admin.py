from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import Alert, DefensePolicy


@admin.register(Alert)
class AlertAdmin(RecordedModelAdmin):
    list_display = ["created_at", "severity", "kind", "bureau", "subject", "status", "licence_suspended"]
    list_filter = ["severity", "kind", "status"]


@admin.register(DefensePolicy)
class DefensePolicyAdmin(RecordedModelAdmin):
    """Stewards set their bureau's thresholds here; every change is an event (save_from_admin)."""

    list_display = ["bureau", "burst_downloads", "burst_window_minutes", "budget_warning", "expiry_warning_days"]

    def may_edit(self, user, obj=None) -> bool:
        from kernel import roles

        return roles.has_role(user, "steward") and (obj is None or obj.bureau_id == user.organisation_id)
