"""Connects the risk checks to what the other apps announce (access.hooks, budgets.hooks).
Every one of those signals is sent outside a transaction, after the fact committed (or,
for a refusal, after it rolled back)."""
from __future__ import annotations

from access import hooks as access_hooks
from budgets import hooks as budget_hooks

from . import checks


def _leak(sender, finding, **kwargs) -> None:
    checks.after_leak(finding)


def _downloaded(sender, download, **kwargs) -> None:
    checks.after_download(download)


def _submitted(sender, application, **kwargs) -> None:
    checks.after_application(application)


def _refused(sender, licence, user, reason, **kwargs) -> None:
    checks.after_refused_use(licence, user, reason)


def _spent(sender, budget, **kwargs) -> None:
    checks.after_budget_change(budget)


access_hooks.leak_traced.connect(_leak, dispatch_uid="defense.leak")
access_hooks.downloaded.connect(_downloaded, dispatch_uid="defense.download")
access_hooks.application_submitted.connect(_submitted, dispatch_uid="defense.application")
access_hooks.licence_refused.connect(_refused, dispatch_uid="defense.refused")
budget_hooks.budget_spent.connect(_spent, dispatch_uid="defense.budget")
