"""What the access workflow announces to the rest of the platform (active defense above all).

Signals, each with the keyword arguments its receivers get:

- ``leak_traced`` (``finding``: access.models.LeakFinding; its ``licence`` and ``recipient``
  are None when the leak named nobody): a leak finding was recorded;
- ``downloaded`` (``download``: access.models.Download; ``licence`` None for open data): a
  package was handed out;
- ``application_submitted`` (``application``): an application was submitted or resubmitted;
- ``licence_refused`` (``licence``, ``user``, ``reason``): someone asked to download under
  a licence and was refused, e.g. a link used by another organisation's user.

The first three are sent after their transaction commits; ``licence_refused`` is sent once
the refusal has rolled back, so nothing of the refused request was written. Receivers
therefore run outside any transaction and may call their own durable actions, such as
``access.actions.suspend_licence(actor=None, licence=..., reason=..., automatic=True)``.
Connect in an AppConfig.ready()::

    from access import hooks
    hooks.leak_traced.connect(raise_leak_alert)   # def raise_leak_alert(sender, finding, **kwargs)

A receiver that fails is logged; it undoes nothing and does not stop the other receivers.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

leak_traced = Signal()
downloaded = Signal()
application_submitted = Signal()
licence_refused = Signal()


def announce(signal: Signal, sender, **kwargs) -> None:
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            log.error("receiver %r of an access signal failed", receiver, exc_info=result)


def leak_found(finding) -> None:
    announce(leak_traced, type(finding), finding=finding)
