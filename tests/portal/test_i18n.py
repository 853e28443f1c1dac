"""Pages in zh-Hans by default, English on request, with committed translations up to date."""
from __future__ import annotations

import re

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


def marked_strings() -> set[str]:
    """Every literal message id: `{% translate "…" %}` in templates, and the first argument of
    _(), gettext(), gettext_lazy() and gettext_noop() in platform code (implicitly joined
    literals included)."""
    import ast

    marked = set()
    for path in (REPO / "templates").rglob("*.html"):
        marked |= set(re.findall(r'{%\s*translate\s+"([^"]+)"', path.read_text()))
        marked |= set(re.findall(r"{%\s*translate\s+'([^']+)'", path.read_text()))
    for path in (REPO / "platform").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args
                    and node.func.id in ("_", "gettext", "gettext_lazy", "gettext_noop")
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                marked.add(node.args[0].value)
    return marked


def test_every_literal_string_marked_for_translation_is_translated():
    """Message ids are written in Chinese (pages) or English (action errors, stages, alerts,
    checks): a Chinese one needs its English entry, an English one its Chinese entry. A new
    `{% translate "…" %}` or `_("…")` without one fails here."""
    def catalog(language):
        path = REPO / f"platform/locale/{language}/LC_MESSAGES/django.po"
        return {e.msgid for e in polib.pofile(str(path)).translated_entries()}

    marked = marked_strings()
    chinese = {m for m in marked if CJK.search(m)}
    assert sorted(chinese - catalog("en")) == [], "translate the new strings into English (en/django.po)"
    assert sorted(marked - chinese - catalog("zh_Hans")) == [], "translate the new strings into Chinese (zh_Hans)"


def test_sandbox_check_details_are_listed_for_translation():
    """sandbox/ is Django-free: every detail its output checks write is listed (and so
    translated) in jobs/check_texts.py."""
    import ast

    from jobs.check_texts import DETAILS
    from sandbox.dp_aggregates import ROW_LOCAL_OK

    def literals(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return literals(node.body) | literals(node.orelse)
        raise AssertionError(f"a check detail that is not a literal: {ast.unparse(node)}")

    written = {ROW_LOCAL_OK}
    for node in ast.walk(ast.parse((REPO / "sandbox/checks.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
            written |= literals(node.args[2])
    assert written and sorted(written - set(DETAILS)) == []


@pytest.mark.django_db
def test_stages_alerts_and_checks_are_stored_untranslated_and_read_in_either_language(world):
    from django.utils import translation

    from jobs.check_texts import shown
    from progress.models import TaskProgress
    from sandbox.checks import check

    task = TaskProgress(stage="round %(round)s of %(rounds)s", stage_args={"round": 2, "rounds": 5})
    checks = [check("small_cells", False, "counts between 1 and %(below)s appear in the output", args={"below": 9})]
    assert checks[0]["detail"] == "counts between 1 and 9 appear in the output"  # what events record
    with translation.override("zh-hans"):
        assert task.stage_text() == "第 2 轮，共 5 轮"
        found = shown(checks)[0]
        assert (str(found["label"]), found["text"]) == ("小计数单元", "输出中出现了 1 至 9 之间的计数")
    with translation.override("en"):
        assert task.stage_text() == "round 2 of 5"
        found = shown(checks)[0]
        assert (str(found["label"]), found["text"]) == ("Small counts", "counts between 1 and 9 appear in the output")


# --- the walk: every role's main pages and the error paths, in zh and in en ------------------
#
# The rule a page is held to (what "text of the other language" means):
# - en: no Chinese character (CJK ideographs, CJK and full-width punctuation) in the visible text
#   (text nodes, and the title/placeholder/aria-label/alt attributes people read), except in what
#   a page marks as not for translation (code, `translate="no"`: a dataset's sample rows, say, or
#   an element in a `lang` of its own, such as the language switch), and except in the
#   data values the viewer legitimately sees in Chinese: text people typed or the data holds
#   (a purpose, a rule, a person's name, a record's field) — every text value stored in the
#   database, less the fields that have an English counterpart which is set (a dataset's title
#   and description, an organisation's name, a scenario's title: those must show in English),
#   and less what the platform itself stores to translate on display (task labels and stages).
# - zh: no English word outside that same data, the codes a page shows as codes (anything with
#   a digit, an underscore, a dot, a colon or a slash in it, lower-case words joined by hyphens
#   such as a slug, acronyms such as API or JSON, and Greek symbols such as ε) and an allow-list
#   of units and brand names.
# - either: no untranslated placeholder (`%(name)s`) and no message id left in the page.

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff01-\uff60]+")
WORD = re.compile(r"(?<![\w./:#@-])[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*(?![\w./:@-])")
BRANDS = {brand.lower() for brand in {
    "Miliao", "GeoParquet", "GeoPackage", "GeoJSON", "PySyft", "Flower", "SuperLink", "SuperNode", "SecAgg",
    "Ladder", "Blum", "Hardt", "Leaflet", "ECharts", "JavaScript", "Swagger", "OpenAPI", "PostgreSQL", "Redis", "Celery",
    "Ethereum", "Besu", "anvil", "zlib", "base64", "Python", "PyTorch", "Opacus", "CKAN", "Token", "W3C",
    "PROV-JSON", "JSON-LD", "ORCID", "MLP", "et", "al", "Chromium", "zip", "OpenSSH",
}}
UNITS = {"m", "km", "s", "ms", "h", "px", "MiB", "KiB", "GiB", "MB", "KB", "GB", "B", "v", "x", "k", "l", "n", "p"}
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
TRANSLATED_ON_DISPLAY = {("progress", "taskprogress"): {"label", "stage"}}
ENGLISH_COUNTERPART = {("catalog", "dataset"): {"title": "title_en", "description": "description_en"},
                       ("accounts", "organisation"): {"name": "name_en"},
                       ("innovation", "scenario"): {"title": "title_en"}}


def visible_text(html: str) -> str:
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts, self.skipping = [], []

        def handle_starttag(self, tag, attrs):
            # Not read: scripts and styles, and what is marked as in a language of its own
            # (<button lang="en">English</button> in the Chinese page's language switch).
            marked = dict(attrs)
            if (tag in ("script", "style", "template", "code", "kbd", "samp", "pre") or marked.get("translate") == "no"
                    or (tag != "html" and marked.get("lang"))):
                self.skipping.append(tag)
            elif self.skipping and tag == self.skipping[0]:
                self.skipping.append(tag)
            if not self.skipping:
                self.parts.extend(v for k, v in attrs if k in READ_ATTRIBUTES and v)

        def handle_endtag(self, tag):
            if self.skipping and tag == self.skipping[-1]:
                self.skipping.pop()

        def handle_data(self, data):
            if not self.skipping:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return "\n".join(parser.parts)


def stored_texts() -> list[str]:
    """Every text value in the database that a page may show as it is, longest first."""
    from django.apps import apps
    from django.db import models

    texts = set()
    for model in apps.get_models():
        meta = model._meta
        if meta.app_label in ("auth", "contenttypes", "sessions", "admin", "axes", "authtoken"):
            continue
        skipped = TRANSLATED_ON_DISPLAY.get((meta.app_label, meta.model_name), set())
        counterparts = ENGLISH_COUNTERPART.get((meta.app_label, meta.model_name), {})
        fields = [f.name for f in meta.concrete_fields
                  if isinstance(f, (models.CharField, models.TextField, models.JSONField)) and f.name not in skipped]
        for row in model.objects.values(*fields, *counterparts.values()):
            for name in fields:
                if name in counterparts and row[counterparts[name]]:
                    continue  # shown in English to English readers: not an allowed data value there
                texts |= _strings(row[name])
    return sorted((t for t in texts if t.strip()), key=len, reverse=True)


def _strings(value) -> set[str]:
    if isinstance(value, str):
        return {value, *value.splitlines()}
    if isinstance(value, dict):
        return set().union(*(_strings(v) | _strings(k) for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def other_language(html: str, language: str, data: dict[str, list[str]]) -> list[str]:
    """What a page in `language` says in the other language, with a little context each."""
    text = visible_text(html)
    for value in data[language]:  # the data the viewer legitimately sees, as it is stored
        if value in text:
            text = (text.replace(value, " ") if language == "en"
                    else re.sub(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", " ", text))
    found = [m.group(0) for m in re.finditer(r"%\(\w+\)[sdr]", text)]
    if language == "en":
        found += [text[max(0, m.start() - 30): m.end() + 30].strip() for m in CJK.finditer(text)]
    else:
        for m in WORD.finditer(text):
            word = m.group(0)
            if (word.lower() in BRANDS or word in UNITS or (word.isupper() and len(word) > 1) or word[0] in "εδη"
                    or ("-" in word and word.islower())):  # a code such as xuhui-planning
                continue
            found.append(text[max(0, m.start() - 30): m.end() + 30].strip())
    return found


@pytest.fixture(scope="module")
def walked(module_world, django_db_blocker):
    """The test world with what each role's pages show: English names and titles, a built
    release, a submitted job, a scenario and its challenge, a risk alert and a task with a stage."""
    from django.utils.translation import gettext_noop

    from conftest import add_release, per_test, rolled_back_at_the_end
    from defense.actions import raise_alert
    from innovation_support import open_challenge
    from jobs import actions as job_actions
    from progress.models import TaskProgress
    from sandbox_support import approve_lab

    with rolled_back_at_the_end(django_db_blocker):
        w = per_test(module_world)
        for org in (w.bureau, w.other_bureau, w.district, w.startup, w.lab, w.audit):
            org.name_en = f"{org.code} (English)"
            org.save(update_fields=["name_en"])
        for dataset, title in ((w.rooms, "Building rooms"), (w.pipes, "Underground pipes"), (w.roads, "Road segments"),
                               (w.foreign, "Shenzhen parcels")):
            dataset.title_en = title
            dataset.save(update_fields=["title_en"])
        add_release(w, rooms=200)
        open_challenge(w, rooms=600)
        approve_lab(w)
        # A district node as the steward recorded it (no SuperLink answers here: its state is unknown).
        from federation.actions import _record_node

        _record_node(w.steward, w.district, "pudong-node", "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQ=",
                     "4242")
        w.job = job_actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="room use",
                                       task="room-use", params={"epochs": 1, "target_epsilon": 1.0, "delta": 1e-5})
        raise_alert(kind="budget_high", severity="warning", bureau=w.bureau, subject="budgets.budget:1",
                    dataset=w.rooms, organisation=w.lab,
                    message=gettext_noop("%(organisation)s has spent ε %(spent)s of %(total)s on %(dataset)s"),
                    message_args={"organisation": "tongji-lab", "spent": "8", "total": "10",
                                  "dataset": "district-rooms"})
        TaskProgress.objects.filter(pk=w.steward_task.pk).update(
            label=gettext_noop("作业 #%(job)s %(title)s"), label_args={"job": w.job.pk, "title": "room use"},
            stage=gettext_noop("round %(round)s of %(rounds)s"), stage_args={"round": 2, "rounds": 5})
        texts = stored_texts()
        w.data = {"en": [t for t in texts if CJK.search(t)],  # what may be Chinese in an English page
                  "zh-hans": [t for t in texts if len(t) > 1 and re.search("[A-Za-z]", t)]}
        yield w


def pages(w) -> dict[str, list[str]]:
    release, job, task = f"/releases/{w.release.pk}/", f"/jobs/{w.job.pk}/", f"/tasks/{w.steward_task.pk}/"
    lineage = f"/lineage/?subject=catalog.dataset:{w.roads.pk}"
    common = ["/", "/account/", "/jobs/", "/innovation/", "/innovation/scenarios/building-use/",
              "/innovation/challenges/room-use-2026/"]
    return {
        "steward": [*common, "/datasets/huangpu-roads/", "/datasets/district-rooms/", release, job, task,
                    "/events/", lineage, "/nodes/"],
        "applicant": [*common, "/datasets/pudong-pipes/", "/datasets/huangpu-roads/"],
        "researcher": [*common, job, "/datasets/district-rooms/"],
        "auditor": [*common, "/events/", lineage, "/nodes/"],
        "admin": [*common, "/events/", "/nodes/"],
        "data_holder": ["/", "/account/", "/datasets/district-rooms/", "/nodes/"],
    }


def error_paths(w) -> list[tuple[str, str, str, dict | None, int]]:
    """(who, method, path, form, status): a refused action, a bad form, a 403 and a 404."""
    return [
        ("applicant", "post", f"/applications/{w.app_startup.pk}/decide/", {"decision": "approve"}, 302),
        ("applicant", "post", "/applications/new/", {"dataset": "pudong-pipes", "purpose": "x"}, 400),
        ("applicant", "get", "/events/", None, 403),
        ("researcher", "get", "/nodes/", None, 403),
        ("steward", "post", "/nodes/", {"organisation": "pudong", "name": "x-node", "public_key": "ssh-rsa AAAA"}, 400),
        ("applicant", "get", "/datasets/no-such-dataset/", None, 404),
        ("steward", "post", f"/applications/{w.app_own_bureau.pk}/decide/", {"decision": "approve"}, 302),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_page_of_every_role_speaks_one_language(walked, client, language):
    w = walked
    problems = []
    for who, paths in pages(w).items():
        client.force_login(getattr(w, who))
        for path in paths:
            response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
            assert response.status_code == 200, (who, path, response.status_code)
            problems += [(who, path, found) for found in other_language(response.content.decode(), language, w.data)]
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_refusals_bad_forms_and_error_pages_speak_the_readers_language(walked, client, language):
    w = walked
    problems = []
    for who, method, path, form, status in error_paths(w):
        client.force_login(getattr(w, who))
        response = getattr(client, method)(path, form, HTTP_ACCEPT_LANGUAGE=language, follow=False)
        assert response.status_code == status, (who, path, response.status_code)
        if status == 302:  # the refusal or the form's error is a message on the page it returns to
            response = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE=language)
            assert 'role="alert"' in response.content.decode(), (who, path)
        problems += [(who, path, found) for found in other_language(response.content.decode(), language, w.data)]
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_language_switch_names_each_language_in_itself(client, language):
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    buttons = dict(re.findall(r'<button type="submit" name="language" value="([\w-]+)"[^>]*>([^<]+)</button>', html))
    assert buttons == {"zh-hans": "中文", "en": "English"}, buttons
