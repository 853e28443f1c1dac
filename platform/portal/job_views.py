"""Sandbox pages: the jobs list, a job's page (live progress bar and training curves,
privacy accounting, output checks, and the steward's decisions), a submission form for the
built-in tasks and for code-to-data, the code-to-data page (PySyft datasets with their mock
download, and the steward's publishing and output policy), the model registry and a
released model's card."""
from __future__ import annotations

import json
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from catalog import rules as catalog_rules
from catalog.models import Dataset
from jobs import actions, check_texts, data
from jobs import rules as jobs_rules
from jobs.models import LIMIT_MAXIMA, CodeOutputs, Job, JobKind, JobStatus, SandboxPolicy, SyftDataset, TrainedModel
from kernel import roles
from kernel.errors import ActionError, InvalidInput
from kernel.paths import state_path
from portal import charts as portal_charts
from portal import readable
from sandbox import checks as sandbox_checks
from sandbox.isolation import Limits
from sandbox.tasks import TASKS

from . import forms


def _visible_job(request, pk: int) -> Job:
    qs = jobs_rules.visible_jobs(request.user, Job.objects.select_related(
        "dataset__owner", "organisation", "submitted_by", "approved_by", "reviewed_by", "corpus"))
    return get_object_or_404(qs, pk=pk)


@login_required
def job_list(request):
    jobs = jobs_rules.visible_jobs(request.user, Job.objects.select_related("dataset", "organisation"))[:200]
    return render(request, "portal/jobs.html", {"jobs": jobs})


def _aggregates_file(job: Job) -> Path | None:
    """The DP aggregates a code-to-data job released (jobs.code_jobs writes them), if any."""
    if not job.output_path or not (job.params or {}).get("aggregate"):
        return None
    path = state_path(job.output_path) / "aggregates.csv"
    return path if path.is_file() else None


@login_required
def job_page(request, pk: int):
    job = _visible_job(request, pk)
    may_decide = roles.allowed(jobs_rules.check_decide_job, request.user, job)
    reviews = jobs_rules.reviews_job_output(request.user, job)  # the log, findings, held files
    policy = SandboxPolicy.of(job.dataset)
    maxima = policy.limit_maxima()
    metric = "accuracy" if job.task == "room-use" else "rmse"
    may_download_outputs = roles.allowed(jobs_rules.check_download_job_outputs, request.user, job)
    if job.kind == JobKind.CODE:  # the DP aggregates, to whoever may read the output
        aggregates = _aggregates_file(job) if reviews or may_download_outputs else None
        charts = portal_charts.code_aggregates(aggregates, job.params.get("aggregate") or {}) if aggregates else []
    else:
        task = TASKS.get(job.task)
        charts = portal_charts.training_curves(job.history or [], task_kind=task.kind if task else "",
                                               metric=metric)
    return render(request, "portal/job.html", {
        "job": job,
        "limits": [(name, value, maxima.get(name)) for name, value in Limits(**job.limits).to_dict().items()],
        "metric": metric,
        "charts": charts,
        "privacy_rows": readable.privacy_rows(job.privacy or {}),
        "holders": readable.holder_rows(job.outcome or {}, job.privacy or {}),
        "may_decide": may_decide,
        "sees_log": reviews,
        "checks": check_texts.shown(job.checks if reviews else sandbox_checks.public(job.checks)),
        "held": [(f, f.preview() if f.is_text or f.suffix == ".pt" else None) for f in data.held_files(job)]
        if reviews else [],
        "model": TrainedModel.objects.filter(job=job).first(),
        "may_download_outputs": may_download_outputs,
        "JobStatus": JobStatus,
    })


_JOB_CONFIRMATIONS = {
    "release": lambda job: {"title": _("发布作业 #%(pk)s 的输出？") % {"pk": job.pk}, "consequence": _(
        "输出将交给提交作业的组织，无法收回。请先打开并检查留存的输出文件。")},
    "reject": lambda job: {"title": _("驳回作业 #%(pk)s？") % {"pk": job.pk}, "consequence": _(
        "驳回后作业结束，输出不会交给申请方；申请方须重新提交。")},
}


@login_required
@require_POST
def decide_job(request, pk: int, decision: str):
    if decision not in ("approve", "reject", "release"):
        raise Http404(decision)
    job = _visible_job(request, pk)
    jobs_rules.check_decide_job(request.user, job)
    if decision != "approve":
        asked = forms.confirmation(request, **_JOB_CONFIRMATIONS[decision](job))
        if asked is not None:
            return asked
    text = request.POST.get("text", "")
    try:
        if decision == "approve":
            actions.approve_job(actor=request.user, job=job, note=text)
            messages.success(request, _("作业已批准，正在运行。"))
        elif decision == "release":
            actions.release_job(actor=request.user, job=job, note=text,
                                intended_use=request.POST.get("intended_use", ""))
            messages.success(request, _("输出已发布。"))
        elif job.status == JobStatus.REVIEW:
            actions.reject_output(actor=request.user, job=job, reason=text)
            messages.success(request, _("输出已驳回。"))
        else:
            actions.reject_job(actor=request.user, job=job, reason=text)
            messages.success(request, _("作业已驳回。"))
    except ActionError as exc:
        messages.error(request, exc.message)
    return redirect("job-page", pk=pk)


# The job form's parameters, typed, and the kinds each belongs to: the page shows a kind's
# own (static/miliao/job_form.js) and the server reads only those, so a centralized job never
# carries federated rounds.
JOB_PARAMS = {
    "target_epsilon": (float, ("centralized", "federated", "code")),
    "delta": (float, ("centralized", "federated", "code")),
    "epochs": (int, ("centralized", "federated")),
    "learning_rate": (float, ("centralized", "federated")),
    "batch_size": (int, ("centralized", "federated")),
    "max_grad_norm": (float, ("centralized", "federated")),
    "rounds": (int, ("federated",)),
    "min_nodes": (int, ("federated",)),
}
JOB_DEFAULTS = {"kind": JobKind.CENTRALIZED, "target_epsilon": "3", "epochs": "3", "learning_rate": "0.3",
                "rounds": str(actions.FEDERATED_DEFAULTS["rounds"])}


def job_body(post) -> dict:
    """The API's job body (JobSerializer) from the form: the chosen kind's fields only, numbers
    typed (InvalidInput names a field that is not one)."""
    kind = post.get("kind", "")
    params = {}
    for name, (cast, kinds) in JOB_PARAMS.items():
        value = post.get(name, "").strip()
        if kind in kinds and value:
            try:
                params[name] = cast(value)
            except ValueError:
                raise InvalidInput(name, _("请输入整数。") if cast is int else _("请输入数字。")) from None
    body = {"dataset": post.get("dataset", ""), "kind": kind, "title": post.get("title", ""), "params": params}
    if kind == JobKind.CODE:
        body["code"] = post.get("code", "")
        if post.get("aggregate", "").strip():
            try:
                params["aggregate"] = json.loads(post["aggregate"])
            except ValueError:
                raise InvalidInput("aggregate", _("聚合声明必须是 JSON。")) from None
    else:
        body["task"] = post.get("task", "")
        if kind == JobKind.FEDERATED:
            params["secagg"] = True
    return body


@login_required
def submit_job(request):
    """The job form: read with the API's JobSerializer and submitted through the same action;
    an error shows the form again as it was typed, the message beside its field."""
    from jobs.api import JobSerializer

    datasets = Dataset.objects.filter(data_class="compute_only").order_by("slug")
    errors = {}
    if request.method == "POST":
        try:
            body = forms.validated(JobSerializer, job_body(request.POST))
            if body["dataset"].data_class != "compute_only":
                raise InvalidInput("dataset", _("请选择一个仅可计算的数据集。"))
            job = actions.submit_job(
                actor=request.user, dataset=body["dataset"], kind=body["kind"], title=body["title"],
                task=body.get("task", ""), code=body.get("code", ""), params=body.get("params") or {})
        except ActionError as exc:
            errors = forms.errors_of(exc)
        else:
            messages.success(request, _("作业已提交，等待数据管理员审批。"))
            return redirect("job-page", pk=job.pk)
    values = request.POST if request.method == "POST" else {**JOB_DEFAULTS, "dataset": request.GET.get("dataset", "")}
    return render(request, "portal/job_submit.html", {
        "datasets": datasets, "tasks": TASKS.values(), "kinds": list(JobKind), "values": values, "errors": errors,
        "syft_datasets": SyftDataset.objects.select_related("dataset", "corpus")}, status=400 if errors else 200)


@login_required
def code_to_data(request):
    """Compute-only datasets for code-to-data: their PySyft datasets with the mock download,
    and their output policy; the owning bureau's stewards publish versions and set policies."""
    datasets = Dataset.objects.filter(data_class="compute_only").select_related("owner").order_by("slug")
    rows = []
    for dataset in datasets:
        policy = SandboxPolicy.of(dataset)
        rows.append({
            "dataset": dataset, "policy": policy, "maxima": _maxima(policy),
            "published": dataset.syft_datasets.select_related("corpus").order_by("-published_at"),
            "may_manage": roles.allowed(catalog_rules.check_manage_dataset, request.user, dataset),
        })
    return render(request, "portal/code_to_data.html", {"rows": rows, "outputs": CodeOutputs.choices})


POLICY_MAXIMA = sorted(set(LIMIT_MAXIMA.values()), key=list(LIMIT_MAXIMA.values()).index)


def _maxima(policy: SandboxPolicy) -> list[tuple[str, str, int]]:
    """(field, label, value) of the most resources a job on the dataset may ask for."""
    return [(f, SandboxPolicy._meta.get_field(f).verbose_name, getattr(policy, f)) for f in POLICY_MAXIMA]


@login_required
@require_POST
def code_to_data_manage(request, slug: str, what: str):
    if what not in ("publish", "policy"):
        raise Http404(what)
    dataset = get_object_or_404(Dataset.objects.filter(data_class="compute_only"), slug=slug)
    catalog_rules.check_manage_dataset(request.user, dataset)
    try:
        if what == "publish":
            published = actions.publish_syft_dataset(actor=request.user, dataset=dataset)
            messages.success(request, _("已发布为 PySyft 数据集。") + f" v{published.corpus.version}")
        else:
            try:
                fields = {"min_cell_count": int(request.POST.get("min_cell_count", "")),
                          "max_output_bytes": int(request.POST.get("max_output_bytes", "")),
                          **{f: int(request.POST[f]) for f in POLICY_MAXIMA if request.POST.get(f, "").strip()}}
            except ValueError:
                messages.error(request, _("参数必须是数字。"))
                return redirect("code-to-data")
            actions.set_sandbox_policy(actor=request.user, dataset=dataset,
                                       code_outputs=request.POST.get("code_outputs", ""), **fields)
            messages.success(request, _("沙箱策略已保存。"))
    except ActionError as exc:
        messages.error(request, exc.message)
    return redirect("code-to-data")


@login_required
def model_list(request):
    models = jobs_rules.visible_models(request.user, TrainedModel.objects.select_related(
        "job__dataset", "organisation"))[:200]
    return render(request, "portal/models.html", {"models": models})


@login_required
def model_page(request, pk: int):
    qs = jobs_rules.visible_models(request.user, TrainedModel.objects.select_related(
        "job__dataset", "organisation", "released_by"))
    model = get_object_or_404(qs, pk=pk)
    task = TASKS.get(model.job.task)
    return render(request, "portal/model.html", {
        "model": model, "card": model.card,
        "charts": portal_charts.training_curves(model.job.history or [], task_kind=task.kind if task else "",
                                                metric=task.metric if task else "accuracy"),
        "privacy_rows": readable.privacy_rows(model.job.privacy or {}),
        "may_download": roles.allowed(jobs_rules.check_download_model, request.user, model),
    })
