"""Texts that a record holds in two languages (a title and its English title, say): the one a
reader of the active language should see."""
from __future__ import annotations

from django.utils import translation


def in_english() -> bool:
    return (translation.get_language() or "").lower().startswith("en")


def localized(zh: str, en: str) -> str:
    """`en` when the reader reads English and the record has it, otherwise `zh`."""
    return en if en and in_english() else zh
