"""Logs as people read them: a task's error, a job's masked log. Shared by the pages and the
API, so neither shows a server path or a terminal code."""
from __future__ import annotations

import sys
import sysconfig
import tempfile

from django.conf import settings

from sandbox import redact


def _roots() -> list[tuple[str, str]]:
    return [
        (str(settings.STATE_DIR), "‹state›"),
        (str(settings.REPO_DIR), "‹platform›"),
        (sysconfig.get_paths().get("purelib", ""), "‹python›"),
        (sys.prefix, "‹python›"),
        (sys.base_prefix, "‹python›"),
        (tempfile.gettempdir(), "‹tmp›"),
    ]


def clean_log(text: str) -> str:
    """A log as people read it: no terminal colour codes, no server paths (the state folder,
    the code's checkout, Python's install and temporary folders become ‹state›, ‹platform›,
    ‹python›, ‹tmp›; any other absolute path keeps only its file name)."""
    return redact.plain(text or "", _roots())
