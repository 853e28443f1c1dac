from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.utils.translation import gettext as _, gettext_lazy

from kernel import roles
from kernel.errors import ActionError
from provenance.admin import RecordedModelAdmin

from . import actions, rules
from .models import Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(RecordedModelAdmin):
    list_display = ["code", "name", "name_en", "kind"]
    list_filter = ["kind"]
    search_fields = ["code", "name", "name_en"]

    def may_edit(self, user, obj=None) -> bool:
        return roles.allowed(rules.check_manage_accounts, user)


@admin.register(User)
class UserAdmin(RecordedModelAdmin):
    list_display = ["username", "first_name", "role", "organisation", "is_active"]
    list_filter = ["role", "organisation", "is_active"]
    search_fields = ["username", "first_name", "email"]
    # Users are created through the API or `manage.py demo` (create_user checks role and
    # organisation and hashes the password); here admins change contact data and activity.
    fields = ["username", "first_name", "email", "role", "organisation", "is_active", "last_login"]
    readonly_fields = ["username", "role", "organisation", "last_login"]

    def may_edit(self, user, obj=None) -> bool:
        return obj is not None and roles.allowed(rules.check_manage_accounts, user)


@admin.register(AccessAttempt)
class LoginLockoutAdmin(RecordedModelAdmin):
    """Failed logins counted by axes (per username and client address); stewards unlock here."""

    list_display = ["username", "ip_address", "failures_since_start", "attempt_time", "path_info"]
    search_fields = ["username", "ip_address"]
    fields = list_display
    readonly_fields = list_display
    actions = ["unlock"]

    def get_queryset(self, request):
        # Only tries at real accounts: a name that is no account is often a password typed
        # into the username field, and it is never shown (nor recorded in the event log).
        return super().get_queryset(request).filter(username__in=User.objects.values("username"))

    @admin.action(description=gettext_lazy("解锁所选用户名的登录"))
    def unlock(self, request, queryset):
        for username in sorted(set(queryset.values_list("username", flat=True))):
            try:
                actions.unlock_login(actor=request.user, username=username)
            except ActionError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                self.message_user(request, _("%(username)s 已解锁。") % {"username": username})
