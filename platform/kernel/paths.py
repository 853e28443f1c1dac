"""Where the platform's state lives: every file path a model stores is relative to
`settings.STATE_DIR`, and is turned into a path here."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings


def state_path(*parts: str | Path) -> Path:
    """`settings.STATE_DIR` joined with `parts` (a stored relative path, or a folder's name)."""
    return Path(settings.STATE_DIR).joinpath(*parts)
