"""Pages put what the platform records into words: a task's result, a verification, a job's
privacy accounting and log, event types and subjects, and charts whose data is on the page."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import per_test, rolled_back_at_the_end
from sandbox_support import add_rooms_corpus, approve_lab

pytestmark = [pytest.mark.foundation]

# What a federated job with DP-SGD at each holder stores (sandbox/federated/app's result.json,
# as jobs.federated keeps it): the holder-level ε is that of the aggregate's small extra noise.
FEDERATED_PRIVACY = {
    "mechanism": "Opacus DP-SGD at each holder (per-record DP), client-side fixed clipping with Gaussian "
                 "noise on the aggregate (Flower), SecAgg+",
    "accountant": "rdp", "epsilon": 2.91, "delta": 1e-5, "record_level_epsilon": 2.91,
    "nodes": {"1": {"epsilon": 2.91, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 300}},
    "holder_level": {"noise_multiplier": 0.01, "clipping_norm": 10.0, "rounds": 3, "epsilon": 11111.78},
    "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 300,
}
HISTORY = [{"round": 0, "step": 0, "of": 3, "accuracy": 0.31},
           *[{"round": r, "step": r, "of": 3, "loss": 1.9 - 0.3 * r, "accuracy": 0.4 + 0.1 * r,
              "epsilon": 0.97 * r, "nodes": 3} for r in (1, 2, 3)]]
# A run's log as a worker captures it: terminal colours and the server's own paths.
LOG = ("\x1b[92mINFO\x1b[0m :      [ROUND 1]\n"
       '  File "/srv/miliao/.venv/lib/python3.12/site-packages/flwr/server/app.py", line 12, in run\n'
       "reading /tmp/miliao-state/jobs/7/work/holder-0/units.parquet\n")


@pytest.fixture
def zh():
    """Rendered outside a request in Chinese, the portal's default (the suite runs such code in English)."""
    from django.utils import translation

    with translation.override("zh-hans"):
        yield


def page(client, user, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def assert_no_internals(html: str) -> None:
    text = re.sub(r'<script id="[\w-]+" type="application/json">.*?</script>', "", html, flags=re.S)
    for raw in ('{"', "{'", "/tmp/", ".venv", "\x1b", "site-packages", "None"):
        assert raw not in text, raw


@pytest.fixture(scope="module")
def shared(django_db_setup, django_db_blocker):
    from conftest import build_world
    from jobs import actions
    from jobs.models import Job

    with rolled_back_at_the_end(django_db_blocker):
        w = build_world()
        add_rooms_corpus(w, rooms=300)
        approve_lab(w)
        job = actions.submit_job(actor=w.researcher, dataset=w.rooms, kind="centralized", title="room use",
                                 task="room-use", params={"target_epsilon": 3.0, "delta": 1e-5})
        # As the runner leaves a finished federated run (jobs.actions.finish_job's fields), without
        # a run: a federated job needs district nodes online to be submitted, which this page's
        # wording does not.
        Job.objects.filter(pk=job.pk).update(kind="federated", params={**job.params, "rounds": 3, "secagg": True},
                                             status="review", privacy=FEDERATED_PRIVACY, history=HISTORY, log=LOG,
                                             metrics={"accuracy": 0.7, "rounds": 3, "nodes_last_round": 3},
                                             epsilon_spent="2.91")
        w.job = Job.objects.get(pk=job.pk)
        yield w


@pytest.fixture
def w(shared, db):
    return per_test(shared)


def test_a_job_page_explains_its_privacy_and_shows_a_clean_log_and_its_curves(w, client):
    html = page(client, w.steward, f"/jobs/{w.job.pk}/")
    assert_no_internals(html)
    privacy = re.search(r'data-testid="job-privacy">(.*?)</table>', html, re.S).group(1)
    assert "每条记录的 ε" in privacy and "2.91" in privacy
    # The holder-level figure of the aggregate's tiny noise promises nothing: said so, not printed.
    assert "11111" not in html and "无实际保护" in privacy
    log = re.search(r'data-testid="job-log">(.*?)</pre>', html, re.S).group(1)
    assert "INFO :      [ROUND 1]" in log and "‹python›/lib/python3.12/site-packages" not in log
    assert "…/units.parquet" in log or "‹state›" in log or "‹tmp›" in log
    # The curves' numbers are on the page, per round, for charts.js and the table fallback.
    loss = json.loads(re.search(r'<script id="chart-loss-data" type="application/json">(.*?)</script>', html,
                                re.S).group(1))
    assert loss["x"]["name"] == "联邦轮次" and loss["y"]["name"] == "训练损失（交叉熵）"
    points = loss["series"][0]["data"]
    assert [p[0] for p in points] == [1, 2, 3] and [p[1] for p in points] == pytest.approx([1.6, 1.3, 1.0])
    metric = json.loads(re.search(r'<script id="chart-metric-data" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))
    assert [p[0] for p in metric["series"][0]["data"]] == [0, 1, 2, 3]  # round 0: the initial model
    assert 'data-chart="chart-epsilon-data"' in html and "vendor/echarts/echarts.min.js" in html
    assert "联邦轮次" in html and "最后一轮参与的持有方" in html


def test_events_have_readable_labels_and_subjects_that_link(w, client):
    from budgets.models import PrivacyBudget

    budget = PrivacyBudget.objects.get(organisation=w.lab, dataset=w.rooms)
    html = page(client, w.auditor, "/events/")
    assert "accounts.user_created" not in re.sub(r'(data-event-type|value)="[^"]+"', "", html)
    assert "创建用户" in html and "授予隐私预算" in html and "隐私计算作业已提交" in html
    assert f'<a href="/budgets/{budget.pk}/">隐私预算 #{budget.pk}</a>' in html
    assert f'<a href="/jobs/{w.job.pk}/">作业 #{w.job.pk}</a>' in html
    client.post("/i18n/setlang/", {"language": "en", "next": "/events/"})
    html = client.get("/events/").content.decode()
    assert "User created" in html and f"Privacy budget #{budget.pk}" in html


def test_a_finished_verification_reads_as_a_verdict(w, client):
    from progress.models import TaskProgress
    from provenance.actions import start_event_log_verification
    from provenance.tasks import verify_event_log_task

    task = start_event_log_verification(actor=w.auditor)
    verify_event_log_task(str(task.pk))
    task = TaskProgress.objects.get(pk=task.pk)
    assert task.result["ok"] and task.result["tamper"] is None
    html = page(client, w.auditor, f"/tasks/{task.pk}/")
    assert_no_internals(html)
    result = re.search(r'data-testid="task-result"(.*?)</div>', html, re.S).group(1)
    assert f"已核验 {task.result['checked']} 个事件" in result and "未发现篡改" in result
    assert '"ok"' not in html and "tamper" not in html


def test_an_ingest_task_names_no_server_path(w, client):
    from progress.actions import queue_task, run_tracked

    from django.utils.translation import gettext_noop

    task = queue_task("corpora.ingest", label=gettext_noop("导入数据 %(dataset)s"), label_args={"dataset": w.rooms.slug},
                      actor=w.steward, dispatch=lambda task_id: None)
    result = {"file": "/tmp/miliao-state/corpora/district-rooms/task-1.parquet", "source": "upload.gpkg",
              "source_crs": "EPSG:4490", "units": 1200, "kinds": {"room": 1000, "building": 200},
              "corpus_version": 9, "version": 2}
    run_tracked(str(task.pk), lambda report: result)
    html = page(client, w.steward, f"/tasks/{task.pk}/")
    assert_no_internals(html)
    assert "已导入第 2 版：1,200 个单元" in html and f"<h1>导入数据 {w.rooms.slug}</h1>" in html


def test_logs_lose_terminal_codes_and_server_paths():
    from django.conf import settings

    from kernel.logs import clean_log

    cleaned = clean_log(LOG + f"wrote {settings.STATE_DIR}/jobs/7/output/model.pt\n"
                        "\x1b]8;;http://x\x07link\x1b]8;;\x07 see https://flower.ai/docs/a/b\r\n")
    assert "\x1b" not in cleaned and "\r" not in cleaned
    assert "/srv/miliao" not in cleaned and "/tmp/" not in cleaned and str(settings.STATE_DIR) not in cleaned
    assert "‹state›/jobs/7/output/model.pt" in cleaned and "…/app.py" in cleaned
    assert "https://flower.ai/docs/a/b" in cleaned  # an address is not a server path
    assert 'line 12, in run' in cleaned


def test_a_release_measures_its_distortion_as_a_histogram():
    from releases.shift import HISTOGRAM_BINS, Percentiles

    offsets = np.random.default_rng(1).uniform(0, 100, 5000)
    figures = Percentiles.of(offsets)
    histogram = figures.histogram
    assert sum(histogram["counts"]) == offsets.size and len(histogram["counts"]) == HISTOGRAM_BINS
    assert histogram["edges"][0] == 0 and histogram["edges"][-1] == pytest.approx(offsets.max())
    assert max(histogram["counts"]) < 2 * min(histogram["counts"])  # uniform in, flat out


def test_a_release_summary_shows_only_meaningful_figures_and_its_distortion_charts(zh):
    from django.template.loader import render_to_string

    from portal.charts import release_distortion
    from releases.shift import Percentiles

    offsets = Percentiles.of(np.random.default_rng(2).uniform(0, 80, 400))
    # A release without sensitive attributes (no l) of roads only (no polygon: no area error).
    report = {"units_in": 400, "units_out": 400,
              "desensitized": {"k_anonymity": {"k_reached": 5, "l_reached": None, "suppressed": 0},
                               "dropped": [], "pii_redacted": {}},
              "declassified": {"removed": {}, "zones": 0},
              "shift": {"mode": {"mode": "smooth_field"},
                        "measured": {"offset_m": offsets.__dict__, "area_error": None,
                                     "length_error": {"p50": 0.001, "p95": 0.004, "max": 0.01}}},
              "coordinates": {"crs": "CGCS2000"}, "lightweight": {"topology": {"broken": 0, "contacts": 3}},
              "size": {"input_bytes": 1000, "output_bytes": {}}, "hashes": {}}
    html = render_to_string("portal/_release_summary.html", {"report": report})
    assert "None" not in html and "l=" not in html and "面积误差" not in html
    assert "每个单元至少与 5 个单元无法区分" in html and "长度误差 p95 0.4%" in html
    charts = {c.id: c for c in release_distortion(report)}
    assert set(charts) == {"chart-offset", "chart-length"}  # no area error measured, no chart of it
    offset = charts["chart-offset"].spec
    assert offset["series"][0]["data"] == offsets.histogram["counts"] and offset["x"]["name"] == "偏移距离（米）"
    # A release built before histograms were kept shows its percentiles (of %, for the relative error).
    assert charts["chart-length"].spec["series"][0]["data"] == [0.1, 0.4, 1.0]


def test_code_to_data_aggregates_chart_the_noisy_counts_and_means(tmp_path, zh):
    from portal.charts import MAX_GROUPS, code_aggregates

    path = tmp_path / "aggregates.csv"
    rows = [f"n{i},{i + 5},{100.0 * (i + 5)},{100.0}" for i in range(MAX_GROUPS + 5)]
    path.write_text("neighbourhood,count,rent_sum,rent_mean\n" + "\n".join(rows) + "\n")
    counts, means = code_aggregates(path, {"by": ["neighbourhood"], "values": {"rent": [0, 10000]}})
    # The largest groups are drawn; the table holds them all.
    assert counts.spec["x"]["categories"][0] == f"n{MAX_GROUPS + 4}" and len(counts.spec["series"][0]["data"]) == MAX_GROUPS
    assert len(counts.rows) == MAX_GROUPS + 5 and counts.spec["series"][0]["data"][0] == MAX_GROUPS + 9
    assert means.title == "rent 的组均值（含噪声）" and set(means.spec["series"][0]["data"]) == {100.0}


def test_each_holders_device_throughput_and_epsilon_are_a_row(zh):
    from portal.readable import holder_rows

    outcome = {"holders": {"pudong-node": {"device": "cuda:NVIDIA H100 80GB HBM3", "rows_per_s": 41234.6},
                           "huangpu-node": {"device": "cpu", "rows_per_s": 9876.2}}}
    privacy = {"nodes": {"pudong-node": {"epsilon": 2.9871}}}
    assert holder_rows(outcome, privacy) == [
        {"node": "huangpu-node", "device": "CPU", "rows_per_s": "9,876", "epsilon": "—"},
        {"node": "pudong-node", "device": "GPU · NVIDIA H100 80GB HBM3", "rows_per_s": "41,235", "epsilon": "2.99"}]
    assert holder_rows({}, privacy) == []
