"""Forms that help: the job form reads only the chosen kind's fields (a centralized job with
the form's defaults is submitted), forms keep what was typed with the error beside its field,
irreversible actions ask for confirmation first, the event log is filtered and paged, and the
PROV export downloads JSON from a browser's link."""
from __future__ import annotations

import json
import re
from html import unescape

import pytest

from conftest import add_release, per_test, rolled_back_at_the_end
from sandbox_support import add_rooms_corpus, approve_lab

pytestmark = [pytest.mark.foundation, pytest.mark.django_db]


@pytest.fixture(scope="module")
def shared(module_world, django_db_blocker):
    with rolled_back_at_the_end(django_db_blocker):
        w = per_test(module_world)
        add_rooms_corpus(w, rooms=300)
        approve_lab(w)
        add_release(w, rooms=120)  # built, not published
        yield w


@pytest.fixture
def w(shared):
    return per_test(shared)


def form_defaults(html: str, kind: str) -> dict:
    """What a browser sends for `kind` with the form as it comes: the kind chosen, the fieldsets
    of other kinds disabled (as job_form.js does), each field's shown value."""
    body = {"kind": kind}
    for fieldset in re.split(r"(?=<fieldset)", html.split('data-testid="job-form"', 1)[1].split("</form>", 1)[0]):
        kinds = re.match(r'<fieldset data-kinds="([^"]+)"', fieldset)
        if kinds and kind not in kinds.group(1).split():
            continue
        for name, value in re.findall(r'<input name="(\w+)"[^>]*?value="([^"]*)"', fieldset):
            body[name] = unescape(value)
        for name, options in re.findall(r'<select name="(\w+)">(.*?)</select>', fieldset, re.S):
            chosen = re.search(r'<option value="([^"]+)" selected', options) or re.search(r'value="([^"]+)"', options)
            body[name] = chosen.group(1)
    return body


def test_a_centralized_job_with_the_forms_defaults_is_submitted(w, client):
    from jobs.models import Job

    client.force_login(w.researcher)
    html = client.get("/jobs/new/?dataset=district-rooms").content.decode()
    assert '<option value="district-rooms" selected>' in html
    assert 'data-kinds="federated"' in html and 'data-kinds="code"' in html  # job_form.js shows the chosen kind's
    body = {**form_defaults(html, "centralized"), "title": "room use, defaults"}
    assert "rounds" not in body and body["task"] == "room-use"
    response = client.post("/jobs/new/", body)
    job = Job.objects.get(title="room use, defaults")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.kind == "centralized" and "rounds" not in job.params and job.params["epochs"] == 3


def test_the_server_reads_only_the_chosen_kinds_fields(w, client):
    from jobs.models import Job

    client.force_login(w.researcher)
    every_field = {"title": "all fields sent", "dataset": "district-rooms", "kind": "centralized", "task": "room-use",
                   "target_epsilon": "2", "epochs": "2", "learning_rate": "0.3", "rounds": "3",
                   "code": "print(1)", "aggregate": "not json"}  # what a browser without script sends
    assert client.post("/jobs/new/", every_field).status_code == 302
    job = Job.objects.get(title="all fields sent")
    assert job.code == "" and "rounds" not in job.params
    # A federated job's body takes its rounds and no code (federated jobs need a district-held
    # dataset and its nodes online to be submitted: tests/jobs/test_federated_jobs.py).
    from django.http import QueryDict

    from portal.job_views import job_body

    form = QueryDict(mutable=True)
    form.update({**every_field, "title": "federated", "kind": "federated"})
    body = job_body(form)
    assert body["params"] == {"target_epsilon": 2.0, "epochs": 2, "learning_rate": 0.3, "rounds": 3, "secagg": True}
    assert "code" not in body and body["task"] == "room-use"


def test_a_refused_form_keeps_what_was_typed_with_the_error_beside_its_field(w, client):
    from access.models import Application
    from jobs.models import Job

    client.force_login(w.researcher)
    response = client.post("/jobs/new/", {"title": "typed title", "dataset": "district-rooms", "kind": "centralized",
                                          "task": "room-use", "epochs": "three", "target_epsilon": "2"})
    html = response.content.decode()
    assert response.status_code == 400 and not Job.objects.filter(title="typed title").exists()
    assert 'value="typed title"' in html and 'name="epochs" type="number" min="1" value="three"' in html
    assert re.search(r'<span class="error field-error" data-field="epochs"[^>]*>[^<]+</span>', html)
    assert 'data-testid="kind-centralized" checked' in html

    client.force_login(w.applicant)
    typed = {"dataset": "sz-parcels", "purpose": "short", "purpose_category": "product", "duration_days": "30"}
    response = client.post("/applications/new/", typed)
    html = response.content.decode()
    assert response.status_code == 400 and not Application.objects.filter(purpose="short").exists()
    assert ">short</textarea>" in html and '<option value="product" selected>' in html
    assert '<option value="sz-parcels" selected>' in html and 'value="30"' in html
    assert re.search(r'data-field="purpose"[^>]*>[^<]*个字符', html)  # in the reader's language
    done = client.post("/applications/new/", {**typed, "purpose": "a pipe risk model for our insurers"})
    assert done.status_code == 302 and done["Location"] == "/", re.findall(r"class=\"error[^>]*>([^<]*)", done.content.decode())


def test_irreversible_actions_ask_for_confirmation_first(w, client):
    from provenance.models import LineageEvent

    client.force_login(w.steward)
    for path, body, then in [
        (f"/applications/{w.app_startup.pk}/decide/", {"decision": "reject", "reason": "no purpose given"}, lambda: w.app_startup.refresh_from_db()
         or w.app_startup.status == "rejected"),
        (f"/releases/{w.release.pk}/publish/", {}, lambda: w.release.refresh_from_db() or w.release.status == "published"),
    ]:
        before = LineageEvent.objects.count()
        asked = client.post(path, body, HTTP_REFERER="http://testserver/")
        html = asked.content.decode()
        assert asked.status_code == 200 and 'data-testid="confirm-page"' in html, path
        assert LineageEvent.objects.count() == before and not then()  # nothing done yet
        assert 'name="confirmed" value="yes"' in html and f'action="{path}"' in html
        for name, value in body.items():  # the confirmation posts the same fields again
            assert f'name="{name}" value="{value}"' in html
        assert client.post(path, {**body, "confirmed": "yes"}).status_code == 302 and then()
    client.force_login(w.steward)
    assert client.post(f"/applications/{w.app_own_bureau.pk}/decide/", {"decision": "changes",
                                                                         "reason": "one district"}).status_code == 302


def test_the_event_log_is_filtered_and_paged(w, client):
    import datetime

    from provenance.models import LineageEvent

    from django.db import transaction

    from provenance.recorder import NewEvent, record_many

    with transaction.atomic():  # downloads of the open release, say: enough events for two pages
        record_many([NewEvent("access.downloaded", w.applicant.actor_label, f"releases.release:{w.release.pk}",
                              {"format": "geojson"})] * 30)
    client.force_login(w.auditor)
    total = LineageEvent.objects.count()
    assert 50 < total <= 100
    first = client.get("/events/")
    assert first.status_code == 200 and "rel=\"next\"" in first.content.decode()
    assert len(re.findall(r"<tr><td>\d+</td>", first.content.decode())) == 50

    def seqs(query):
        response = client.get(f"/events/?{query}")
        assert response.status_code == 200, response.content[:300]
        return [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", response.content.decode())]

    assert seqs("event_type=catalog.dataset_registered") == sorted(
        LineageEvent.objects.filter(event_type="catalog.dataset_registered").values_list("seq", flat=True),
        reverse=True)
    mine = seqs("actor=researcher")
    assert mine and all(LineageEvent.objects.get(seq=s).actor.endswith(":researcher") for s in mine)
    subject = LineageEvent.objects.filter(event_type="releases.release_built").first().subject
    assert seqs(f"subject={subject}") == sorted(
        LineageEvent.objects.filter(subject=subject).values_list("seq", flat=True), reverse=True)
    today = datetime.date.today()
    assert len(seqs(f"since={today - datetime.timedelta(days=1)}&until={today + datetime.timedelta(days=1)}"
                    f"&page=2")) == min(50, total - 50)
    assert seqs(f"until={today - datetime.timedelta(days=2)}") == []
    bad = client.get("/events/?since=yesterday&actor=researcher")
    assert bad.status_code == 400 and 'data-field="since"' in bad.content.decode()
    assert 'name="actor" value="researcher"' in bad.content.decode()
    api = client.get("/api/events/?since=yesterday")  # the API reads the same filters
    assert api.status_code == 400 and "since" in api.json()


def test_the_prov_export_downloads_json_from_a_browser(w, client):
    client.force_login(w.auditor)
    subject = f"releases.release:{w.release.pk}"
    page = client.get(f"/lineage/?subject={subject}").content.decode()
    link = unescape(re.search(r'<a href="([^"]+)" data-testid="prov-export" download', page).group(1))
    response = client.get(link, HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;") and ".prov.json" in response["Content-Disposition"]
    assert "prefix" in json.loads(response.content)


def test_the_policy_form_keeps_what_was_typed_and_names_the_wrong_field(w, client):
    from portal.release_views import policy_form_values
    from releases.models import ReleasePolicy
    from releases.pipeline import ReleaseSpec

    client.force_login(w.steward)
    typed = {**policy_form_values(ReleaseSpec.from_dict(w.policy.spec)), "k": "five", "zone_buffer_m": "7.5",
             "do": "save"}
    policies = ReleasePolicy.objects.count()
    html = client.post(f"/datasets/{w.roads.slug}/", typed).content.decode()
    assert ReleasePolicy.objects.count() == policies
    assert 'name="k" type="number" min="2" value="five"><span class="error field-error" data-field="k"' in html
    assert 'name="zone_buffer_m" value="7.5">' in html


def test_an_approval_reads_its_terms_with_the_apis_serializer(w, client):
    from provenance.models import LineageEvent

    client.force_login(w.steward)
    before = LineageEvent.objects.count()
    response = client.post(f"/applications/{w.app_startup.pk}/decide/",
                           {"decision": "approve", "reason": "clear", "download_limit": "many"}, follow=True)
    assert any(str(m).startswith("下载次数上限") for m in response.context["messages"])  # the field, by its label
    assert LineageEvent.objects.count() == before
    w.app_startup.refresh_from_db()
    assert w.app_startup.status == "submitted"
