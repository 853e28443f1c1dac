"""A hostile applicant tries to get private rows and platform secrets out of the sandbox, as
the outside test of issue 15 did: code-to-data jobs (approved by a steward, run on the private
rows) and challenge submissions (no approval, run on the hidden test rows) that raise rows in
exceptions, print them to stdout and stderr, put them in CSV headers, file names, metric names
and a `status`, encode them as base64 of zlib, and link their outputs to the master key, the
Django secret key, /etc/passwd or /dev/zero.

Everything the applicant can then reach is collected (every API list they can call, their jobs,
tasks and submissions in detail, their pages) together with every event and task row, and
searched for the private values (each unit's and building's id and each exact area): 0 found.
Each channel is checked to be blocked on its own: by the job's or submission's fixed reason,
and by the search. One world, built once, on the real Celery worker. (An exception class named
after a row and `sys.exit(rows)` are attacked with real tracebacks in
tests/sandbox/test_failure_reasons.py; every kind of link, device, FIFO and cap, the scorer's
and the contributions' readers included, in tests/sandbox/test_outputs.py.)"""
from __future__ import annotations

import base64
import binascii
import json
import re
import textwrap
import zlib
from pathlib import Path

import pytest

from conftest import PASSWORD, api_client, build_world, wait_for
from innovation_support import open_challenge, register
from role_support import assert_answers
from sandbox_support import add_rooms_corpus, approve_lab, follow_job

pytestmark = [pytest.mark.sandbox, pytest.mark.innovation]

READ = """\
import base64, glob, json, os, sys, zlib
import pyarrow.compute as pc, pyarrow.csv as pacsv, pyarrow.parquet as pq
path = [p for p in glob.glob(os.environ["SYFTBOX_FOLDER"] + "/**/units.parquet", recursive=True) if "/private/" in p][0]
units = pq.read_table(path)
rooms = units.filter(pc.equal(units["kind"], "room"))
rows = rooms.select(["unit_id", "building_id", "area_m2", "monthly_rent", "build_year"]).slice(0, 12).to_pylist()
text = "\\n".join(",".join(str(v) for v in r.values()) for r in rows)
os.makedirs("outputs", exist_ok=True)
print(text)
print(text, file=sys.stderr)
"""
METRICS_AND_STATUS = """\
named = {r["unit_id"] + "_" + str(r["area_m2"]): 1 for r in rows}
for where in ("result.json", "outputs/result.json", "outputs/status.json"):
    json.dump({"status": text, "metrics": named, "history": [{"step": 1, **named}]}, open(where, "w"))
open("progress.jsonl", "w").write(json.dumps({"step": 1, "status": text, **named}) + "\\n")
open("state.yaml", "w").write("status: " + text.replace("\\n", " "))
"""
RAISE = READ + METRICS_AND_STATUS + "raise ValueError(text)\n"
MALFORMED_CONTRIBUTIONS = READ + METRICS_AND_STATUS + """\
open("outputs/contributions.csv", "w").write("unit_id,neighbourhood,monthly_rent\\n" + text + ',"unclosed\\n')
"""
HELD_FOR_REVIEW = READ + METRICS_AND_STATUS + """\
everything = rooms.select(["unit_id", "building_id", "area_m2", "monthly_rent", "floor", "build_year"])
import io
buffer = io.BytesIO()
pacsv.write_csv(everything, buffer)
open("outputs/notes.txt", "w").write(base64.b64encode(zlib.compress(buffer.getvalue(), 9)).decode())
open("outputs/" + rows[0]["unit_id"] + "_" + str(rows[0]["area_m2"]).replace(".", "_") + ".csv", "w").write("a\\n1\\n")
header = ",".join(r["unit_id"] + " " + str(r["area_m2"]) for r in rows)
open("outputs/table.csv", "w").write(header + "\\n" + ",".join("1" for _ in rows) + "\\n")
"""
LINKS = """\
import os
os.makedirs("outputs", exist_ok=True)
try:  # Landlock refuses a link across folders; were it allowed, the worker would refuse it
    os.link(os.environ["SYFTBOX_FOLDER"] + "/../../../miliao_master_key", "outputs/aaa-hard.txt")
except OSError:
    pass
os.symlink("{state}/miliao_master_key", "outputs/summary.txt")
os.symlink("{state}/django_secret_key", "outputs/zz-secret.txt")
os.symlink("/dev/zero", "outputs/zz-zero.txt")
"""

PREDICT = """\
import json, os, sys
import pyarrow.parquet as pq
features = pq.read_table(sys.argv[1])
rows = features.slice(0, 8).to_pylist()
text = "\\n".join(",".join(str(v) for v in r.values()) for r in rows)
"""
SUBMISSIONS = {
    "raises": PREDICT + """\
print(text)
print(text, file=sys.stderr)
named = {r["unit_id"] + "_" + str(r["area_m2"]): 1 for r in rows}
for where in ("result.json", "metrics.json", "status.json"):
    json.dump({"status": text, "metrics": named}, open(where, "w"))
raise ValueError(text)
""",
    "header": PREDICT + """\
all_rows = features.slice(0, 40).to_pylist()
header = ",".join(r["unit_id"] + " " + str(r["area_m2"]) for r in all_rows)
open("predictions.csv", "w").write(header + "\\n" + ",".join("1" for _ in all_rows) + "\\n")
""",
    "passwd": PREDICT + 'os.symlink("/etc/passwd", "predictions.csv")\n',
}
SUBMISSION_REASONS = {
    "raises": "the script raised ValueError",
    "header": "predictions.csv: needs the columns unit_id and prediction",
    "passwd": "predictions.csv: an output file is a symbolic link",
}
AGGREGATE = {"by": ["neighbourhood"], "values": {"monthly_rent": [0, 60000]}}
ROLES = ["anonymous", "researcher", "applicant", "steward", "other_steward", "data_holder", "auditor", "admin"]
# The role matrix of the held output (tests/accounts/test_permissions.py finds its row here):
# only the stewards of the bureau that owns the data open it; the applicant is refused.
TABLE = [
    ("job-held-output", "get", lambda w: f"/api/jobs/{w.jobs['held']}/held-outputs/1/", None,
     dict(anonymous=401, researcher=403, applicant=404, steward=200, other_steward=404, data_holder=404, auditor=403,
          admin=403), None),
]
CANDIDATE = re.compile(r"[A-Z]?\d+(?:\.\d+)?")
BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _line_of(code: str, needle: str) -> int:
    return next(i for i, line in enumerate(code.splitlines(), 1) if needle in line)


def private_values(w) -> set[str]:
    """What the attacker is after: every unit's and building's id and every exact area."""
    import pyarrow.parquet as pq
    from django.conf import settings

    table = pq.read_table(Path(settings.STATE_DIR) / w.rooms_corpus.path, columns=["unit_id", "building_id",
                                                                                    "area_m2"])
    values = {v for v in table["unit_id"].to_pylist() + table["building_id"].to_pylist() if v}
    return values | {repr(a) for a in table["area_m2"].to_pylist() if a is not None}


def found_in(text: str, values: set[str]) -> set[str]:
    """The private values in `text`, also inside longer tokens, and inside base64 (of zlib) runs."""
    hits = set(CANDIDATE.findall(text)) & values
    for run in BASE64.findall(text):
        try:
            decoded = base64.b64decode(run + "=" * (-len(run) % 4))
            decoded = zlib.decompress(decoded) if decoded[:1] == b"\x78" else decoded
        except (binascii.Error, zlib.error, ValueError):
            continue
        hits |= set(CANDIDATE.findall(decoded.decode("utf-8", "replace"))) & values
    return hits


def _submit_code_job(w, code: str, params: dict) -> int:
    created = api_client(w.researcher).post("/api/jobs/", {
        "kind": "code", "title": "rents", "dataset": "district-rooms", "code": code, "params": params},
        format="json")
    assert created.status_code == 201, created.content
    return created.json()["id"]


@pytest.fixture(scope="module")
def attack(django_db_setup, django_db_blocker, celery_worker):
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings

    with django_db_blocker.unblock(), override_settings(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        try:
            w = build_world()
            add_rooms_corpus(w, rooms=1500, seed=21)
            approve_lab(w, epsilon="20")
            steward = api_client(w.steward)
            assert steward.post("/api/syft-datasets/", {"dataset": "district-rooms"},
                                format="json").status_code == 201
            w.raise_code = RAISE
            w.jobs = {"raises": _submit_code_job(w, RAISE, {"target_epsilon": 0.5, "aggregate": AGGREGATE}),
                      "malformed": _submit_code_job(w, MALFORMED_CONTRIBUTIONS,
                                                    {"target_epsilon": 0.5, "aggregate": AGGREGATE})}
            assert steward.put("/api/sandbox-policies/district-rooms/", {"code_outputs": "reviewed"},
                               format="json").status_code == 200
            w.jobs["held"] = _submit_code_job(w, HELD_FOR_REVIEW, {"target_epsilon": 0.5})
            w.jobs["links"] = _submit_code_job(w, LINKS.format(state=settings.STATE_DIR), {"target_epsilon": 0.5})
            for job_id in w.jobs.values():
                assert steward.post(f"/api/jobs/{job_id}/approve/", {"note": "read"}, format="json").status_code == 200
            w.challenge = open_challenge(w, daily_limit=20)["slug"]
            register(w.researcher, w.challenge, "attackers")
            w.submissions = {}
            for name, code in SUBMISSIONS.items():
                sent = api_client(w.researcher).post("/api/submissions/", {
                    "challenge": w.challenge, "kind": "code", "code": code}, format="json")
                assert sent.status_code == 201, sent.content
                w.submissions[name] = sent.json()["id"]
            w.job_results = {name: follow_job(w, job_id) for name, job_id in w.jobs.items()}
            client = api_client(w.researcher)
            w.submission_results = {name: wait_for(
                lambda: (data := client.get(f"/api/submissions/{pk}/").json())["status"] in ("scored", "failed")
                and data, timeout=120, interval=0.3, what=f"submission {name}") for name, pk in w.submissions.items()}
            w.private = private_values(w)
            yield w
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def w(attack, db):
    """The attacked world; each test's own writes (a refused release, a login) roll back."""
    return attack


def applicant_sees(w) -> dict[str, str]:
    """Every response the applicant gets: each API list they may call, their jobs, tasks and
    submissions in detail (and what they may try on them), and their pages."""
    from django.test import Client

    from miliao.urls import router
    from progress.models import TaskProgress

    client = api_client(w.researcher)
    urls = [f"/api/{prefix}/" for prefix, _, _ in router.registry] + ["/api/me/", "/api/tasks/?page=2"]
    for job_id in w.jobs.values():
        urls += [f"/api/jobs/{job_id}/", f"/api/jobs/{job_id}/outputs/", f"/api/jobs/{job_id}/held-outputs/1/"]
    for pk in w.submissions.values():
        urls += [f"/api/submissions/{pk}/", f"/api/submissions/{pk}/proof/"]
    urls += [f"/api/challenges/{w.challenge}/", f"/api/challenges/{w.challenge}/leaderboard/",
             f"/api/lineage/?subject=jobs.job:{w.jobs['held']}"]
    tasks = [str(t) for t in TaskProgress.objects.filter(organisation=w.lab).values_list("pk", flat=True)]
    urls += [f"/api/tasks/{t}/" for t in tasks]
    seen = {url: client.get(url).content.decode("utf-8", "replace") for url in urls}
    browser = Client()
    assert browser.login(username=w.researcher.username, password=PASSWORD)
    pages = ["/", "/jobs/", "/jobs/code-to-data/", "/models/", "/innovation/", f"/innovation/challenges/{w.challenge}/"]
    pages += [f"/jobs/{job_id}/" for job_id in w.jobs.values()] + [f"/tasks/{t}/" for t in tasks]
    for page in pages:
        response = browser.get(page)
        assert response.status_code == 200, page
        seen[page] = response.content.decode()
    return seen


def test_each_code_job_fails_with_a_fixed_reason_or_is_held_with_its_flags(w):
    jobs = w.job_results
    assert jobs["raises"]["status"] == "failed"
    assert jobs["raises"]["status_reason"] == f"the script raised ValueError (line {_line_of(w.raise_code, 'raise')})"
    assert jobs["raises"]["outcome"] == {"ok": False, "reason": "error", "message": jobs["raises"]["status_reason"],
                                         "seconds": jobs["raises"]["outcome"]["seconds"]}
    assert jobs["malformed"]["status"] == "failed"
    assert jobs["malformed"]["status_reason"] == \
        "the contributions cannot be aggregated: contributions.csv: not readable as a table"
    assert jobs["links"]["status"] == "failed" and jobs["links"]["status_reason"] in (
        "an output file is a symbolic link", "an output file is a hard link (it has other names)")
    assert jobs["links"]["outcome"]["seconds"] < 60  # /dev/zero was never read
    held = jobs["held"]
    assert held["status"] == "review", held["status_reason"]
    failed = {c["name"] for c in held["checks"] if not c["passed"]}
    assert {"identifiers", "encoded", "compressibility"} <= failed, held["checks"]
    assert all("finding" not in c for c in held["checks"]) and held["log"] is None
    assert "output_sha256" not in held["outcome"] and held["held_outputs"] is None


def test_each_submission_fails_with_a_fixed_reason(w):
    for name, expected in SUBMISSION_REASONS.items():
        result = w.submission_results[name]
        assert (result["status"], result["status_reason"]) == ("failed", expected), name


def test_nothing_the_applicant_can_reach_holds_a_private_value_or_a_secret(w):
    from django.conf import settings

    seen = applicant_sees(w)
    assert len(seen) > 60
    leaks = {url: sorted(found_in(text, w.private))[:3] for url, text in seen.items()}
    assert {url: hits for url, hits in leaks.items() if hits} == {}
    everything = "\n".join(seen.values())
    for secret in (settings.MILIAO_MASTER_KEY, settings.SECRET_KEY, "root:x:0:0"):
        assert secret not in everything


def test_no_event_and_no_task_row_holds_a_private_value(w):
    from progress.models import TaskProgress
    from provenance.models import LineageEvent

    events = list(LineageEvent.objects.values_list("event_type", "payload"))
    assert {"jobs.failed", "jobs.finished", "innovation.submission_failed"} <= {e for e, _ in events}
    assert {e: sorted(found_in(p, w.private))[:3] for e, p in events if found_in(p, w.private)} == {}
    rows = [json.dumps([t.stage, t.error, t.result], ensure_ascii=False) for t in TaskProgress.objects.all()]
    assert [r for r in rows if found_in(r, w.private)] == []


def test_the_steward_reads_a_masked_log_and_opens_every_held_output_before_release(w):
    from django.conf import settings
    from django.test import Client

    steward = api_client(w.steward)
    logs = {name: steward.get(f"/api/jobs/{job_id}/").json() for name, job_id in w.jobs.items()}
    for name, job in logs.items():
        assert job["log"] is not None and not found_in(job["log"], w.private), name
        for secret in (settings.MILIAO_MASTER_KEY, settings.SECRET_KEY):
            assert secret not in json.dumps(job)
    assert "ValueError" in logs["raises"]["log"] and ", line " in logs["raises"]["log"]
    assert "summary.txt" in logs["links"]["log"]  # the steward learns which entry was refused
    held = logs["held"]
    assert len(held["held_outputs"]) == 5 and {"finding"} <= set(next(
        c for c in held["checks"] if c["name"] == "encoded"))
    for item in held["held_outputs"]:
        opened = steward.get(item["url"])
        assert opened.status_code == 200 and opened["Content-Disposition"].startswith("attachment; filename=")
        assert opened["Content-Type"] in ("text/plain; charset=utf-8", "application/octet-stream")
        assert opened["X-Content-Type-Options"] == "nosniff" and "sandbox" in opened["Content-Security-Policy"]
        assert f"miliao-job-{w.jobs['held']}-held-{item['index']}" in opened["Content-Disposition"]
    browser = Client()
    assert browser.login(username=w.steward.username, password=PASSWORD)
    page = browser.get(f"/jobs/{w.jobs['held']}/").content.decode()
    assert page.count('data-testid="job-held-name"') == 5 and 'data-testid="job-held-preview"' in page
    # Flagged, the output cannot be released, so it never reaches the applicant.
    refused = steward.post(f"/api/jobs/{w.jobs['held']}/release/", {"note": "ok"}, format="json")
    assert refused.status_code == 409 and "encoded" in refused.json()["detail"]
    assert api_client(w.researcher).get(f"/api/jobs/{w.jobs['held']}/held-outputs/1/").status_code == 403


def test_only_the_data_owners_stewards_open_a_held_output(w):
    for name, method, path, body, expected, done in TABLE:
        for role in ROLES:
            assert_answers(w, role, method, path(w), body, expected, done)
