"""The API's permission classes (DRF's `permission_classes`). The rules they stand for are in
each app's rules.py; the role primitives in kernel.roles."""
from __future__ import annotations

from rest_framework import permissions as drf_permissions

from kernel.roles import Role, has_role, role_of


class OpenCatalogReadable(drf_permissions.BasePermission):
    """Anyone may read (anonymous readers see open datasets only: catalog.rules.catalog_datasets)."""

    def has_permission(self, request, view) -> bool:
        return request.method in drf_permissions.SAFE_METHODS


class AuditorsReadOnly(drf_permissions.BasePermission):
    """Logged-in users only; auditors may not use unsafe methods unless a view allows it."""

    message = "auditors read everything and change nothing"

    def has_permission(self, request, view) -> bool:
        if role_of(request.user) is None:
            return False
        if request.method in drf_permissions.SAFE_METHODS:
            return True
        if getattr(view, "auditors_may_post", False):
            return True
        return not has_role(request.user, Role.AUDITOR)
