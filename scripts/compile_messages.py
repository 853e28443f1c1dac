"""Compile platform/locale/*/LC_MESSAGES/django.po into django.mo with polib.

The .mo files are committed, so a fresh machine needs no GNU gettext; a test checks
that they match their .po. Run this (or `make messages`) after editing a .po file.
"""
from __future__ import annotations

from pathlib import Path

import polib

LOCALE = Path(__file__).resolve().parents[1] / "platform" / "locale"


def main() -> None:
    for po_path in sorted(LOCALE.glob("*/LC_MESSAGES/django.po")):
        po = polib.pofile(str(po_path))
        untranslated = [e.msgid for e in po.untranslated_entries() if not e.obsolete]
        if untranslated:
            raise SystemExit(f"{po_path}: {len(untranslated)} untranslated, e.g. {untranslated[0]!r}")
        po.save_as_mofile(str(po_path.with_suffix(".mo")))
        print(f"compiled {po_path.relative_to(LOCALE.parent.parent)} ({len(po.translated_entries())} messages)")


if __name__ == "__main__":
    main()
