"""Pages in zh-Hans by default, English on request, with committed translations up to date."""
from __future__ import annotations

import polib
import pytest

from conftest import REPO

pytestmark = pytest.mark.foundation


def test_compiled_translations_match_their_sources():
    for po_path in (REPO / "platform" / "locale").glob("*/LC_MESSAGES/django.po"):
        po = polib.pofile(str(po_path))
        mo = polib.mofile(str(po_path.with_suffix(".mo")))
        assert po.untranslated_entries() == [], f"{po_path}: untranslated strings"
        expected = {(e.msgid, e.msgstr or e.msgstr_plural.get(0)) for e in po.translated_entries()}
        compiled = {(e.msgid, e.msgstr or e.msgstr_plural.get(0)) for e in mo}
        assert expected <= compiled, f"{po_path.with_suffix('.mo')} is stale: run `make messages`"


@pytest.mark.django_db
def test_language_switch_changes_the_dashboard(world, client):
    client.force_login(world.steward)
    assert "数据管理员工作台" in client.get("/").content.decode()
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    html = client.get("/").content.decode()
    assert "Steward dashboard" in html and "Review queue" in html
    assert '<html lang="en">' in html
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "审核队列" in client.get("/").content.decode()


@pytest.mark.django_db
def test_pages_and_docs_load_assets_locally(world, client):
    """No CDN: every script and stylesheet a page names is served by the portal itself."""
    import re

    from django.contrib.staticfiles import finders

    client.force_login(world.auditor)
    for page in ["/", "/events/", "/api/docs/"]:
        html = client.get(page).content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/static/"), f"{page} loads {asset} from elsewhere"
            assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among the static files"


def test_every_literal_string_marked_for_translation_is_translated():
    """A new `{% translate "…" %}` or `_("…")` without an English entry fails here."""
    import re

    catalog = {e.msgid for e in polib.pofile(str(REPO / "platform/locale/en/LC_MESSAGES/django.po")).translated_entries()}
    marked = set()
    for path in (REPO / "templates").rglob("*.html"):
        marked |= set(re.findall(r'{%\s*translate\s+"([^"]+)"', path.read_text()))
        marked |= set(re.findall(r"{%\s*translate\s+'([^']+)'", path.read_text()))
    for path in (REPO / "platform").rglob("*.py"):
        if "migrations" not in path.parts:
            marked |= set(re.findall(r'\b(?:_|gettext|gettext_lazy|gettext_noop)\(\s*"([^"]+)"\s*\)', path.read_text()))
    assert sorted(marked - catalog) == [], "run makemessages and translate the new strings"
