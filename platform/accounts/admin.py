from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from . import permissions
from .models import Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(RecordedModelAdmin):
    list_display = ["code", "name", "name_en", "kind"]
    list_filter = ["kind"]
    search_fields = ["code", "name", "name_en"]

    def may_edit(self, user, obj=None) -> bool:
        return permissions.allowed(permissions.check_manage_accounts, user)


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
        return obj is not None and permissions.allowed(permissions.check_manage_accounts, user)
