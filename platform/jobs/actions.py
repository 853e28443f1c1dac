"""The job lifecycle: submitted → approved → running → review → released, or rejected or
failed on the way. Every transition checks its rule, writes, and appends its lineage event
in one transaction; the budget spend and refunds go through budgets.actions, whose own
transactions lock the budget row.
"""
from __future__ import annotations

import hashlib
import math
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from access.models import Application, ApplicationStatus
from budgets import actions as budget_actions
from budgets import amounts
from budgets.models import BudgetEntry, EntryKind, PrivacyBudget
from catalog import rules as catalog_rules
from catalog.models import Dataset, HeldBy
from corpora.models import CorpusVersion
from kernel.errors import Conflict, InvalidInput
from kernel.events import EventType
from kernel.inputs import text, whole
from kernel.paths import state_path
from progress.actions import by_name, queue_task
from provenance.recorder import actor_of, record, subject_of
from sandbox import checks, code_to_data
from sandbox import tasks as sandbox_tasks
from sandbox.dp_aggregates import AggregateSpec
from sandbox.isolation import Limits
from sandbox.training import TrainSpec

from . import data, rules
from .models import (FINISHED, LIMIT_MAXIMA, CodeOutputs, Job, JobKind, JobStatus, SandboxPolicy, SyftDataset,
                     TrainedModel)

TITLE_MAX = 200
CODE_MAX_BYTES = 100_000
REASON_MAX = 2000
ROUNDS_MAX = 200
FEDERATED_DEFAULTS = {"rounds": 10, "min_nodes": 2, "secagg": True, "dp": "client", "local_dp": True,
                      "holders": None, "server_optimizer": "fedadam", "server_lr": 0.05}
# A federated job's training defaults where they differ from a centralized one's: more rounds
# of fewer local epochs, and the server's FedAdam step (bench/training.py measures them).
FEDERATED_TRAIN_DEFAULTS = {"epochs": 2, "batch_size": 2048, "learning_rate": 0.5}
SERVER_OPTIMIZERS = ("fedadam", "fedavg")
SERVER_LR_RANGE = (0.0, 10.0)  # exclusive
REUSE_PARAM = "base_model"  # a showcase item id: fine-tune a shared result
DP_PLACEMENTS = ("client", "server")
CODE_DEFAULTS = {"target_epsilon": 1.0, "delta": 1e-6}
CODE_PARAMS = {"target_epsilon", "delta", "aggregate"}
MIN_CELL_COUNT_RANGE = (2, 1000)
MAX_OUTPUT_BYTES_RANGE = (1_000, 50_000_000)
_TRAIN_FIELDS = set(TrainSpec.__dataclass_fields__)


def jobs_dir() -> Path:
    return state_path("jobs")


def job_dir(job: Job) -> Path:
    return jobs_dir() / str(job.pk)


def models_dir() -> Path:
    return state_path("models")


# --- code-to-data: the sandbox policy and the PySyft dataset -----------------------------



@transaction.atomic(durable=True)
def set_sandbox_policy(*, actor, dataset: Dataset, code_outputs: str, min_cell_count: int,
                       max_output_bytes: int, **maxima: int) -> SandboxPolicy:
    """The owning bureau's steward says how code-to-data outputs of a compute-only dataset
    leave the platform, and the most resources a job on it may ask for (`maxima`: any of
    the policy's max_* fields; those not given keep their value). Jobs keep the policy and
    limits they were submitted under."""
    catalog_rules.check_manage_dataset(actor, dataset)
    if dataset.data_class != "compute_only":
        raise InvalidInput("dataset", gettext("%(dataset)s is %(dataset_data_class)s: sandbox policies are "
                                              "for compute-only datasets")
                                      % {"dataset": dataset.slug, "dataset_data_class": dataset.get_data_class_display()})
    if code_outputs not in CodeOutputs.values:
        raise InvalidInput("code_outputs", gettext("one of %(codeoutputs_values)s")
                                           % {"codeoutputs_values": ', '.join(CodeOutputs.values)})
    min_cell_count = whole(min_cell_count, "min_cell_count", *MIN_CELL_COUNT_RANGE)
    max_output_bytes = whole(max_output_bytes, "max_output_bytes", *MAX_OUTPUT_BYTES_RANGE)
    bounds = {field: Limits.BOUNDS[limit] for limit, field in LIMIT_MAXIMA.items()}
    unknown = set(maxima) - set(bounds)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], gettext("not a limit of the sandbox policy (%(bounds)s)")
                                               % {"bounds": ', '.join(sorted(bounds))})
    maxima = {field: whole(value, field, *bounds[field]) for field, value in maxima.items()}
    policy, _ = SandboxPolicy.objects.select_for_update().get_or_create(dataset=dataset)
    policy.code_outputs, policy.min_cell_count, policy.max_output_bytes = code_outputs, min_cell_count, \
        max_output_bytes
    for field, value in maxima.items():
        setattr(policy, field, value)
    policy.updated_by = actor
    policy.save()
    record(EventType.JOBS_SANDBOX_POLICY_SET, actor=actor_of(actor), subject=subject_of(dataset),
           payload={"code_outputs": code_outputs, "min_cell_count": min_cell_count,
                    "max_output_bytes": max_output_bytes, **{f: getattr(policy, f) for f in sorted(bounds)}})
    return policy


@transaction.atomic(durable=True)
def publish_syft_dataset(*, actor, dataset: Dataset, corpus: CorpusVersion | None = None) -> SyftDataset:
    """Publish a compute-only dataset version for code-to-data: a PySyft dataset whose mock
    part (synthetic rows) anyone logged in may download, beside the private part that only
    jobs read."""
    catalog_rules.check_manage_dataset(actor, dataset)
    if dataset.data_class != "compute_only":
        raise InvalidInput("dataset", gettext("%(dataset)s is %(dataset_data_class)s: only compute-only "
                                              "data runs code-to-data jobs")
                                      % {"dataset": dataset.slug, "dataset_data_class": dataset.get_data_class_display()})
    if dataset.held_by == HeldBy.DISTRICTS:
        raise Conflict(gettext("%(dataset)s is held by its districts' nodes: code-to-data runs on bureau-held "
                               "data only") % {"dataset": dataset.slug})
    corpus = corpus or CorpusVersion.objects.filter(dataset=dataset).order_by("-version").first()
    if corpus is None:
        raise Conflict(gettext("%(dataset)s has no corpus version to publish yet")
                       % {"dataset": dataset.slug})
    if corpus.dataset_id != dataset.pk:
        raise InvalidInput("corpus", gettext("corpus version #%(corpus)s is not a version of %(dataset)s")
                                     % {"corpus": corpus.pk, "dataset": dataset.slug})
    if SyftDataset.objects.filter(corpus=corpus).exists():
        raise Conflict(gettext("%(dataset)s v%(corpus_version)s is already published for code-to-data")
                       % {"dataset": dataset.slug, "corpus_version": corpus.version})
    mock, private = data.code_tables(corpus)
    box = data.syft_root() / "datasets" / f"{dataset.slug}-v{corpus.version}"
    if box.exists():  # left by a publication whose transaction did not commit
        shutil.rmtree(box)
    summary = f"{dataset.title} v{corpus.version}: {private.num_rows} units, {len(private.schema)} columns"
    readme = (f"# {dataset.title} ({dataset.slug}) v{corpus.version}\n\nMock rows are synthetic "
              "(corpora.mock): they have the private rows' columns, never their values. Direct identifiers "
              f"({', '.join(data.direct_identifiers())}) are not in either part.\n")
    published = code_to_data.publish_dataset(box, owner=data.datasite_email(dataset.owner), name=dataset.slug,
                                             mock=mock, private=private, summary=summary, readme=readme)
    syft_dataset = SyftDataset.objects.create(
        dataset=dataset, corpus=corpus, name=published.name, owner=published.owner,
        path=str(box.relative_to(settings.STATE_DIR)), mock_sha256=published.mock_sha256,
        private_sha256=published.private_sha256, mock_rows=published.mock_rows,
        private_rows=published.private_rows, published_by=actor)
    record(EventType.JOBS_SYFT_DATASET_PUBLISHED, actor=actor_of(actor), subject=subject_of(syft_dataset),
           payload={"dataset": dataset.slug, "corpus_version": corpus.version, "name": published.name,
                    "datasite": published.owner, "mock_sha256": published.mock_sha256,
                    "private_sha256": published.private_sha256, "mock_rows": published.mock_rows,
                    "private_rows": published.private_rows, "columns": private.schema.names},
           inputs=[subject_of(corpus)])
    return syft_dataset


# --- submission and approval -------------------------------------------------------------



def _train_params(params: dict) -> dict:
    unknown = set(params) - _TRAIN_FIELDS - set(FEDERATED_DEFAULTS) - {REUSE_PARAM}
    if unknown:
        raise InvalidInput("params", gettext("unknown parameters: %(unknown)s")
                                     % {"unknown": ', '.join(sorted(unknown))})
    if "delta" in params:  # δ is checked once, as a budget's is; TrainSpec gets a number
        params = {**params, "delta": float(amounts.delta(params["delta"], "params.delta"))}
    try:
        spec = TrainSpec(**{k: v for k, v in params.items() if k in _TRAIN_FIELDS})
    except (TypeError, ValueError) as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidInput(f"params.{field}" if message else "params", message or str(exc)) from None
    if not spec.private:
        raise InvalidInput("params.private", gettext("jobs on compute-only data always train with "
                                                     "differential privacy"))
    return spec.to_dict()


def _federated_params(params: dict) -> dict:
    out = {k: params.get(k, v) for k, v in FEDERATED_DEFAULTS.items()}
    if not isinstance(out["rounds"], int) or isinstance(out["rounds"], bool) or not 1 <= out["rounds"] <= ROUNDS_MAX:
        raise InvalidInput("params.rounds", gettext("a whole number from 1 to %(rounds_max)s")
                                            % {"rounds_max": ROUNDS_MAX})
    if not isinstance(out["min_nodes"], int) or isinstance(out["min_nodes"], bool) or out["min_nodes"] < 2:
        raise InvalidInput("params.min_nodes", gettext("a whole number, at least 2 (one node alone is not "
                                                       "federated)"))
    if out["dp"] not in DP_PLACEMENTS:
        raise InvalidInput("params.dp", gettext("one of %(dp_placements)s")
                                        % {"dp_placements": ', '.join(DP_PLACEMENTS)})
    for flag in ("secagg", "local_dp"):
        if not isinstance(out[flag], bool):
            raise InvalidInput(f"params.{flag}", gettext("true or false"))
    if out["holders"] is not None and not (isinstance(out["holders"], list) and out["holders"]
                                           and all(isinstance(h, str) for h in out["holders"])):
        raise InvalidInput("params.holders", gettext("the names of the district nodes to train at (a list), or "
                                                     "leave it out for every node that holds the dataset"))
    if out["dp"] == "server" and out["secagg"]:
        raise InvalidInput("params.dp", gettext("server-side clipping needs each update in the clear; with "
                                                "SecAgg+ clip on the clients (dp=client)"))
    if out["server_optimizer"] not in SERVER_OPTIMIZERS:
        raise InvalidInput("params.server_optimizer", gettext("one of %(server_optimizers)s")
                                                      % {"server_optimizers": ", ".join(SERVER_OPTIMIZERS)})
    if out["server_optimizer"] == "fedadam" and not out["local_dp"]:
        raise InvalidInput("params.server_optimizer", gettext("fedadam needs DP-SGD at the holders (local_dp): "
                                                              "without it the aggregate's noise carries the "
                                                              "guarantee, which holds for plain averaging "
                                                              "(fedavg) only"))
    lr = out["server_lr"]
    if (isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr)
            or not SERVER_LR_RANGE[0] < lr < SERVER_LR_RANGE[1]):
        raise InvalidInput("params.server_lr", gettext("a number in (%(low)s, %(high)s)")
                                               % {"low": f"{SERVER_LR_RANGE[0]:g}", "high": f"{SERVER_LR_RANGE[1]:g}"})
    out["server_lr"] = float(lr)
    return out


def _code_params(params: dict, policy: SandboxPolicy) -> dict:
    extra = set(params) - CODE_PARAMS
    if extra:
        raise InvalidInput("params", gettext("a code-to-data job takes only %(code_params)s, not %(extra)s")
                                     % {"code_params": ', '.join(sorted(CODE_PARAMS)),
                                        "extra": ', '.join(sorted(extra))})
    out = {**CODE_DEFAULTS, **params, "outputs": policy.code_outputs, "min_cell_count": policy.min_cell_count,
           "max_output_bytes": policy.max_output_bytes}
    if policy.code_outputs == CodeOutputs.DP:
        if "aggregate" not in params:
            raise InvalidInput("params.aggregate", gettext("this dataset's outputs are DP aggregates: "
                                                           "declare the group columns and value bounds of "
                                                           "your contributions"))
        try:
            out["aggregate"] = AggregateSpec.from_dict(params["aggregate"]).to_dict()
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise InvalidInput(f"params.{field}", message) from None
    elif "aggregate" in params:
        raise InvalidInput("params.aggregate", gettext("this dataset's code-to-data outputs are reviewed "
                                                       "files, not DP aggregates"))
    return out


def _code(code) -> str:
    code = text(code, "code", limit=CODE_MAX_BYTES)
    if len(code.encode()) > CODE_MAX_BYTES:
        raise InvalidInput("code", gettext("at most %(code_max_bytes)s bytes")
                                   % {"code_max_bytes": CODE_MAX_BYTES})
    try:
        compile(code, "job.py", "exec")
    except SyntaxError as exc:
        raise InvalidInput("code", gettext("line %(exc_lineno)s: %(exc_msg)s")
                                   % {"exc_lineno": exc.lineno, "exc_msg": exc.msg}) from None
    return code


LIMIT_UNITS = {"memory_mb": " MB", "disk_mb": " MB", "output_mb": " MB", "cpu_seconds": " s", "wall_seconds": " s"}


def _limits(limits, policy: SandboxPolicy) -> dict:
    """The job's resources: what it asks for, each at most the dataset policy's maximum
    (refused above it, naming the field); what it leaves out, the platform's default capped
    at that maximum."""
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise InvalidInput("limits", gettext("must be an object"))
    maxima = policy.limit_maxima()
    unknown = set(limits) - set(maxima)
    if unknown:
        raise InvalidInput("limits", gettext("unknown limits: %(unknown)s (known: %(maxima)s)")
                                     % {"unknown": ', '.join(sorted(unknown)),
                                        "maxima": ', '.join(sorted(maxima))})
    for field, value in limits.items():
        if isinstance(value, int) and not isinstance(value, bool) and value > maxima[field]:
            unit = LIMIT_UNITS.get(field, "")
            raise InvalidInput(f"limits.{field}", gettext("at most %(maxima)s%(unit)s for this dataset, "
                                                          "got %(value)s")
                                                  % {"maxima": maxima[field], "unit": unit, "value": value})
    defaults = Limits()
    asked = {**{f: min(getattr(defaults, f), maxima[f]) for f in maxima}, **limits}
    try:
        return Limits(**asked).to_dict()
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidInput(field, message) from None


def _approval(actor, dataset: Dataset) -> Application | None:
    return (
        Application.objects.filter(organisation_id=actor.organisation_id, dataset=dataset,
                                   status=ApplicationStatus.APPROVED)
        .order_by("-decided_at").first()
    )


def _check_budget(organisation, dataset: Dataset, epsilon: Decimal, delta: float) -> None:
    budget = PrivacyBudget.objects.filter(organisation=organisation, dataset=dataset).first()
    if budget is not None and Decimal(repr(delta)) > budget.delta:
        # ε is accounted at the job's δ, so a larger δ than the budget's would understate
        # what the budget pays (ε 0.99 at δ 1e-5 is ε 1.24 at 1e-6): refused, never converted.
        raise InvalidInput("params.delta", gettext("δ %(delta)g is above δ %(budget_delta)s, the δ of the "
                                                   "privacy budget of %(organisation_code)s on "
                                                   "%(dataset)s: a job runs at its budget's δ or below")
                                           % {"delta": delta,
                                              "budget_delta": amounts.short(budget.delta),
                                              "organisation_code": organisation.code,
                                              "dataset": dataset.slug})
    remaining = budget.epsilon_remaining if budget else Decimal(0)
    if epsilon > remaining:
        raise Conflict(
            gettext("the job asks for ε %(epsilon)s but the privacy budget of %(organisation_code)s on "
                    "%(dataset)s has ε %(remaining)s left")
            % {"epsilon": amounts.short(epsilon),
               "organisation_code": organisation.code,
               "dataset": dataset.slug,
               "remaining": amounts.short(remaining)}
        )


@transaction.atomic(durable=True)
def submit_job(
    *, actor, dataset: Dataset, kind: str, title: str, task: str = "", code: str = "", params: dict | None = None,
    limits: dict | None = None, corpus: CorpusVersion | None = None,
) -> Job:
    application = _approval(actor, dataset)
    rules.check_submit_job(actor, dataset, application)
    title = text(title, "title", limit=TITLE_MAX)
    limits = _limits(limits, SandboxPolicy.of(dataset))
    params = dict(params or {})
    budget = PrivacyBudget.objects.filter(organisation=actor.organisation, dataset=dataset).first()
    if "delta" not in params and budget is not None:  # unless it asks for less, a job runs at its budget's δ
        params["delta"] = min(float(budget.delta), CODE_DEFAULTS["delta"]) if kind == JobKind.CODE \
            else float(budget.delta)
    if kind not in JobKind.values:
        raise InvalidInput("kind", gettext("one of %(jobkind_values)s")
                                   % {"jobkind_values": ', '.join(JobKind.values)})
    syft_dataset = None
    if kind == JobKind.CODE:
        code = _code(code)
        params = _code_params(params, SandboxPolicy.of(dataset))
        task = ""
        syft_dataset = SyftDataset.objects.filter(dataset=dataset).order_by("-published_at").first()
        if syft_dataset is None:
            raise Conflict(gettext("%(dataset)s is not published for code-to-data yet: its stewards "
                                   "publish it first")
                           % {"dataset": dataset.slug})
        if corpus is not None and corpus.pk != syft_dataset.corpus_id:
            raise InvalidInput("corpus", gettext("code-to-data runs on the published version "
                                                 "(v%(syft_dataset_corpus_version)s), not on corpus "
                                                 "version #%(corpus)s")
                                         % {"syft_dataset_corpus_version": syft_dataset.corpus.version,
                                            "corpus": corpus.pk})
        corpus = syft_dataset.corpus
    else:
        if code:
            raise InvalidInput("code", gettext("built-in tasks take no code; submit a code-to-data job "
                                               "instead"))
        try:
            sandbox_tasks.task_named(task)
        except ValueError as exc:
            raise InvalidInput("task", str(exc).partition(": ")[2]) from None
        fed = _federated_params(params) if kind == JobKind.FEDERATED else {}
        if kind == JobKind.CENTRALIZED and set(params) & set(FEDERATED_DEFAULTS):
            raise InvalidInput("params", gettext("rounds, min_nodes, secagg, dp, local_dp, holders, "
                                                 "server_optimizer and server_lr are for federated jobs"))
        base = params.pop(REUSE_PARAM, None)
        train = {k: v for k, v in params.items() if k not in FEDERATED_DEFAULTS}
        if kind == JobKind.FEDERATED:
            train = {**FEDERATED_TRAIN_DEFAULTS, **train}
        params = {**_train_params(train), **fed}
    epsilon = amounts.epsilon(params["target_epsilon"], "params.target_epsilon")
    delta = float(amounts.delta(params["delta"], "params.delta"))  # as a budget's δ is checked
    if corpus is None:
        corpus = CorpusVersion.objects.filter(dataset=dataset).order_by("-version").first()
        if corpus is None:
            raise Conflict(gettext("%(dataset)s has no corpus version to run on yet")
                           % {"dataset": dataset.slug})
    elif corpus.dataset_id != dataset.pk:
        raise InvalidInput("corpus", gettext("corpus version #%(corpus)s is not a version of %(dataset)s")
                                     % {"corpus": corpus.pk, "dataset": dataset.slug})
    _check_budget(actor.organisation, dataset, epsilon, delta)
    if kind == JobKind.FEDERATED:
        params["holders"] = _holders(dataset, params["holders"], params["min_nodes"])
    elif dataset.held_by == HeldBy.DISTRICTS:
        raise Conflict(gettext("%(dataset)s is held by its districts' nodes: centralized and code-to-data jobs "
                               "run on bureau-held data only; submit a federated job") % {"dataset": dataset.slug})
    base_result, attribution = (None, None) if kind == JobKind.CODE or base is None else \
        _reuse(actor, base, task, corpus, params)
    if attribution:
        params = {**params, REUSE_PARAM: base_result.pk, "attribution": attribution}
    job = Job.objects.create(
        kind=kind, title=title, dataset=dataset, corpus=corpus, application=application,
        organisation=actor.organisation, submitted_by=actor, task=task, code=code, params=params,
        limits=limits, epsilon=epsilon, delta=delta, syft_dataset=syft_dataset, base_result=base_result,
    )
    if syft_dataset is not None:  # PySyft's side follows the commit (sync_syft_job)
        transaction.on_commit(lambda: sync_syft_job(job), robust=True)
    record(
        EventType.JOBS_SUBMITTED, actor=actor_of(actor), subject=subject_of(job),
        payload={"kind": kind, "task": task, "dataset": dataset.slug, "corpus_version": corpus.version,
                 "epsilon": amounts.short(epsilon), "delta": delta, "params": params, "limits": job.limits,
                 "code_sha256": hashlib.sha256(code.encode()).hexdigest() if code else ""},
        inputs=[subject_of(corpus), subject_of(application)] + ([subject_of(syft_dataset)] if syft_dataset else [])
        + ([subject_of(base_result)] if base_result else []),
    )
    return job


def _holders(dataset: Dataset, names: list[str] | None, min_nodes: int) -> list[str]:
    """The district nodes a federated job trains at: those named (or every registered node
    holding a partition of the dataset), each registered and holding one, and at least
    `min_nodes` of them online at the standing SuperLink now."""
    from federation import live
    from federation.models import DistrictNode, NodePartition, NodeStatus
    from sandbox.federated.deploy import FederationError

    if dataset.held_by != HeldBy.DISTRICTS:
        raise Conflict(gettext("federated jobs train at the districts' nodes, on the partitions they hold: "
                               "%(dataset)s is held by its bureau") % {"dataset": dataset.slug})
    holding = {p.node.name: p.node for p in NodePartition.objects.filter(dataset=dataset).select_related("node")}
    if names is None:
        names = sorted(n for n, node in holding.items() if node.status == NodeStatus.REGISTERED)
    for name in names:
        node = DistrictNode.objects.filter(name=name).first()
        if node is None:
            raise InvalidInput("params.holders", gettext("no district node named %(node)s") % {"node": name})
        if node.status == NodeStatus.REVOKED:
            raise InvalidInput("params.holders", gettext("node %(node)s was revoked") % {"node": name})
        if name not in holding:
            raise InvalidInput("params.holders", gettext("node %(node)s holds no partition of %(dataset)s")
                                                 % {"node": name, "dataset": dataset.slug})
    if len(set(names)) < min_nodes:
        raise InvalidInput("params.holders", gettext("%(count)s holder(s) of %(dataset)s; the job needs at least "
                                                     "min_nodes=%(min_nodes)s")
                                             % {"count": len(set(names)), "dataset": dataset.slug,
                                                "min_nodes": min_nodes})
    try:
        online = set(live.online(holding[n].flower_node_id for n in names))
    except FederationError:
        raise Conflict(gettext("the federation's SuperLink does not answer: no federated job can be submitted "
                               "now")) from None
    up = [n for n in names if holding[n].flower_node_id in online]
    if len(up) < min_nodes:
        down = ", ".join(n for n in names if n not in up)
        raise Conflict(gettext("only %(up)s of the %(count)s holders are online (%(down)s offline), fewer than "
                               "min_nodes=%(min_nodes)s: submit again when they are back")
                       % {"up": len(up), "count": len(names), "down": down, "min_nodes": min_nodes})
    return sorted(set(names))


def _reuse(actor, base, task: str, corpus: CorpusVersion, params: dict):
    """A shared result to start from: the licence allows it, and its weights fit this job's
    model (the same task, the same features and hidden size). Returns it and the attribution
    the job, its model card and its lineage carry."""
    from innovation import actions as innovation_actions
    from innovation.models import ShowcaseItem

    if not isinstance(base, int) or isinstance(base, bool):
        raise InvalidInput(f"params.{REUSE_PARAM}", gettext("the id of a shared result on the showcase"))
    item = ShowcaseItem.objects.select_related("submission", "challenge", "team").filter(pk=base).first()
    if item is None:
        raise InvalidInput(f"params.{REUSE_PARAM}", gettext("no shared result #%(base)s") % {"base": base})
    attribution = innovation_actions.reuse_base(actor=actor, item=item, task=task)
    try:  # in the jail: the weights are an applicant's file
        hidden = innovation_actions.inspect_weights(state_path(item.submission.path),
                                                    item.challenge)["hidden"]
    except (ValueError, KeyError):
        raise InvalidInput(f"params.{REUSE_PARAM}", gettext("shared result #%(base)s holds no weights of a "
                                                            "built-in model")
                                                    % {"base": base}) \
            from None
    vocabulary = sandbox_tasks.vocabulary(data.corpus_table_of(corpus, ["kind", "neighbourhood"]))
    if vocabulary != item.challenge.spec["neighbourhoods"]:
        raise InvalidInput(f"params.{REUSE_PARAM}", gettext("shared result #%(base)s encodes other "
                                                            "neighbourhoods than %(corpus_dataset_slug)s "
                                                            "v%(corpus_version)s: its features differ")
                                                    % {"base": base,
                                                       "corpus_dataset_slug": corpus.dataset.slug,
                                                       "corpus_version": corpus.version})
    if hidden != params["hidden"]:
        raise InvalidInput("params.hidden", gettext("shared result #%(base)s has %(hidden)s hidden units; "
                                                    "set hidden to %(hidden)s to fine-tune it")
                                            % {"base": base, "hidden": hidden})
    return item, {k: v for k, v in attribution.items() if k != "path"}


def syft_job_name(job: Job) -> str:
    return f"miliao-job-{job.pk}"


def sync_syft_job(job: Job) -> None:
    """Bring a code job's PySyft twin in line with the job, whose row is the truth: submitted,
    approved or rejected as the steward decided, and its outputs shared once released. It runs
    after the action's transaction commits (so a commit that fails leaves PySyft untouched),
    and again before the job runs (so a call that failed after the commit is made then).
    Idempotent."""
    job = Job.objects.select_related("syft_dataset", "submitted_by").get(pk=job.pk)
    box, owner, name = data.jobs_box(), job.syft_dataset.owner, syft_job_name(job)
    submitter = data.submitter_email(job.submitted_by)
    try:
        info = code_to_data.job(box, owner=owner, job_name=name)
    except ValueError:  # not submitted yet
        code_to_data.submit(box, owner=owner, submitter=submitter, job_name=name, code=job.code)
        info = code_to_data.job(box, owner=owner, job_name=name)
    if info.status == "pending" and job.approved_by_id is not None:
        code_to_data.approve(box, owner=owner, job_name=name, reason=job.review_note)
    elif info.status == "pending" and job.status == JobStatus.REJECTED:
        code_to_data.reject(box, owner=owner, job_name=name, reason=job.review_note)
    if job.status == JobStatus.RELEASED:
        code_to_data.share(box, owner=owner, job_name=name, submitter=submitter)


def _locked(job: Job, *allowed: str) -> Job:
    job = Job.objects.select_for_update().select_related("dataset", "organisation").get(pk=job.pk)
    if job.status not in allowed:
        raise Conflict(gettext("job #%(job)s is %(job_status)s; this needs it to be %(allowed)s")
                       % {"job": job.pk, "job_status": job.get_status_display(),
                          "allowed": " / ".join(str(JobStatus(a).label) for a in allowed)})
    return job


@transaction.atomic(durable=True)
def approve_job(*, actor, job: Job, note: str = "") -> Job:
    """The steward has read the job (its code, for code-to-data) and lets it run."""
    rules.check_decide_job(actor, job)
    job = _locked(job, JobStatus.SUBMITTED)
    note = text(note, "note", limit=REASON_MAX, required=False)
    if job.syft_dataset_id:  # the steward has read the code: PySyft's own approval, once committed and
        # before the task is dispatched (on_commit runs in order); the runner makes it again if it failed
        transaction.on_commit(lambda: sync_syft_job(job), robust=True)
    progress = queue_task("jobs.run", label=gettext_noop("作业 #%(job)s %(title)s"),
                          label_args={"job": job.pk, "title": job.title[:150]}, actor=job.submitted_by,
                          dispatch=by_name("jobs.run", job.pk))
    job.status, job.approved_by, job.review_note, job.task_id = JobStatus.APPROVED, actor, note, progress.pk
    job.save(update_fields=["status", "approved_by", "review_note", "task_id", "updated_at"])
    record(EventType.JOBS_APPROVED, actor=actor_of(actor), subject=subject_of(job), payload={"note": note})
    return job


@transaction.atomic(durable=True)
def reject_job(*, actor, job: Job, reason: str) -> Job:
    rules.check_decide_job(actor, job)
    job = _locked(job, JobStatus.SUBMITTED)
    reason = text(reason, "reason", limit=REASON_MAX)
    job.status, job.review_note, job.reviewed_by, job.finished_at = JobStatus.REJECTED, reason, actor, timezone.now()
    job.save(update_fields=["status", "review_note", "reviewed_by", "finished_at", "updated_at"])
    if job.syft_dataset_id:
        transaction.on_commit(lambda: sync_syft_job(job), robust=True)
    record(EventType.JOBS_REJECTED, actor=actor_of(actor), subject=subject_of(job), payload={"stage": "submission",
                                                                                      "reason": reason})
    return job


# --- running (the worker) ----------------------------------------------------------------


def charge(job: Job) -> BudgetEntry:
    """Spend the job's target ε before it touches private data; a second call (a retried
    task) finds the first spend instead of spending again."""
    existing = BudgetEntry.objects.filter(job=subject_of(job), kind=EntryKind.SPEND).first()
    if existing is not None:
        return existing
    return budget_actions.spend(
        actor=job.submitted_by, organisation=job.organisation, dataset=job.dataset, epsilon=job.epsilon,
        job=subject_of(job), reason=f"{job.get_kind_display()} #{job.pk}",
    )


@transaction.atomic(durable=True)
def start_job(*, job: Job, entry: BudgetEntry) -> Job:
    job = _locked(job, JobStatus.APPROVED)
    job.status, job.budget_entry, job.started_at = JobStatus.RUNNING, entry, timezone.now()
    job.save(update_fields=["status", "budget_entry", "started_at", "updated_at"])
    record(EventType.JOBS_STARTED, actor="system", subject=subject_of(job),
           payload={"epsilon_charged": amounts.short(entry.epsilon), "budget_entry": entry.pk},
           inputs=[f"budgets.budgetentry:{entry.pk}"])
    return job


def report_progress(job: Job, history: list[dict]) -> None:
    """Telemetry while running (no lineage event): the curve the job page draws."""
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(history=history, updated_at=timezone.now())


def _epsilon_of(privacy: dict) -> Decimal | None:
    value = privacy.get("epsilon")
    if value is None or not math.isfinite(float(value)):
        return None
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-amounts.EPSILON_PLACES), rounding="ROUND_CEILING")


@transaction.atomic(durable=True)
def finish_job(*, job: Job, result: dict) -> Job:
    """The run ended well: hold its output for review."""
    job = _locked(job, JobStatus.RUNNING)
    job.status, job.finished_at = JobStatus.REVIEW, timezone.now()
    job.epsilon_spent = spent_of(job, result.get("privacy", {}))
    for field in ("privacy", "history", "metrics", "outcome", "checks", "log", "output_path"):
        setattr(job, field, result.get(field, getattr(job, field)))
    job.save()
    # Nothing the job wrote goes into the event (it is anchored, never removed): the checks
    # without their findings, the output by its hash.
    record(EventType.JOBS_FINISHED, actor="system", subject=subject_of(job),
           payload={"epsilon_spent": amounts.short(job.epsilon_spent), "privacy": job.privacy,
                    "metrics": job.metrics, "checks": checks.public(job.checks),
                    "output_sha256": result.get("output_sha256", "")})
    return job


@transaction.atomic(durable=True)
def fail_job(*, job_id: int, reason: str, outcome: dict | None = None, log: str = "",
             spent: Decimal | None = None) -> Job:
    """Stop a job that cannot finish. `spent` is the ε its mechanism already used (None: it
    never touched the data), which the refund leaves charged. `reason` and `outcome` are what
    the applicant reads and the event keeps: fixed categories (sandbox.failures), never the
    job's text; `log` is the masked log, for the data owner's stewards."""
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.status in FINISHED:
        return job
    job.status, job.status_reason, job.finished_at = JobStatus.FAILED, reason[:REASON_MAX], timezone.now()
    job.outcome = outcome or job.outcome
    job.log = log or job.log
    job.epsilon_spent = spent if spent is not None else (Decimal(0) if job.budget_entry_id else None)
    job.save()
    record(EventType.JOBS_FAILED, actor="system", subject=subject_of(job),
           payload={"reason": job.status_reason, "outcome": job.outcome,
                    "epsilon_spent": amounts.short(job.epsilon_spent) if job.epsilon_spent is not None else None})
    return job


def job_run_lost(task, reason: str) -> None:
    """The worker running the job died (progress.recover_lost_tasks): the job fails, and its
    charge stands in full, since it may have read the data before it stopped."""
    job = Job.objects.filter(task_id=task.pk).first()
    if job is None or job.status in FINISHED:
        return
    charged = BudgetEntry.objects.filter(job=subject_of(job), kind=EntryKind.SPEND).exists()
    fail_job(job_id=job.pk, reason=f"{reason}; the charge stands" if charged else reason,
             spent=job.epsilon if charged else None)


def settle_charge(job: Job, spent: Decimal) -> BudgetEntry | None:
    """Bring the job's charge down to `spent` (what the accountant says it used), never below:
    refund the difference. Settling twice refunds nothing more."""
    entry = BudgetEntry.objects.filter(job=subject_of(job), kind=EntryKind.SPEND).first()
    if entry is None:
        return None
    refunded = sum((r.epsilon for r in entry.refunds.all()), Decimal(0))
    excess = entry.epsilon - refunded - spent
    if excess <= 0:
        return None
    return budget_actions.refund(actor=None, entry=entry, epsilon=excess,
                                 reason=f"job #{job.pk}: charged ε {amounts.short(entry.epsilon)}, "
                                        f"used ε {amounts.short(spent)}")


def spent_of(job: Job, privacy: dict) -> Decimal:
    """The ε to keep charged for a finished run: the accountant's figure, rounded up."""
    spent = _epsilon_of(privacy)
    if spent is None or spent > job.epsilon * Decimal("1.001"):
        raise Conflict(gettext("job #%(job)s reports ε %(epsilon)s against a target of %(job_epsilon)s: "
                               "not releasable")
                       % {"job": job.pk, "epsilon": privacy.get('epsilon'), "job_epsilon": job.epsilon})
    return min(spent, job.epsilon)


# --- output review and the model registry ------------------------------------------------


def release_job(*, actor, job: Job, note: str = "", intended_use: str = "") -> Job:
    """The steward has looked at the held output and its automatic checks and releases it;
    a model goes into the registry with its card. Its files are published and shared only
    once the release has committed; a refusal, or a commit that fails, leaves nothing."""
    try:
        return _release_job(actor=actor, job=job, note=note, intended_use=intended_use)
    except BaseException:
        for staged in (models_dir() / f"job-{job.pk}").glob(".model.pt.*.staged"):
            staged.unlink(missing_ok=True)
        raise


@transaction.atomic(durable=True)
def _release_job(*, actor, job: Job, note: str, intended_use: str) -> Job:
    rules.check_decide_job(actor, job)
    job = _locked(job, JobStatus.REVIEW)
    note = text(note, "note", limit=REASON_MAX, required=False)
    failed = [c["name"] for c in job.checks if c.get("blocking", True) and not c.get("passed")]
    if failed:
        raise Conflict(gettext("job #%(job)s failed the output checks %(failed)s: reject it instead")
                       % {"job": job.pk, "failed": ', '.join(failed)})
    job.status, job.reviewed_by, job.review_note = JobStatus.RELEASED, actor, note
    job.save(update_fields=["status", "reviewed_by", "review_note", "updated_at"])
    release_event = record(EventType.JOBS_RELEASED, actor=actor_of(actor), subject=subject_of(job), payload={"note": note})
    if job.kind == JobKind.CODE:  # shared in PySyft once the release has committed
        transaction.on_commit(lambda: sync_syft_job(job), robust=True)
    else:
        _register_model(actor, job, release_event, intended_use)
    return job


def _register_model(actor, job: Job, release_event, intended_use: str) -> TrainedModel:
    """The model's row and card, with its weights staged beside their place in the registry
    and renamed into it once the release has committed: a commit that fails publishes no
    file (the staged copy goes), and a committed model always has its weights."""
    source = state_path(job.output_path) / "model.pt"
    target = models_dir() / f"job-{job.pk}" / "model.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".model.pt.{uuid.uuid4().hex}.staged")
    shutil.copyfile(source, staged)
    transaction.on_commit(lambda: staged.replace(target))
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    task = sandbox_tasks.task_named(job.task)
    model = TrainedModel.objects.create(
        job=job, name=f"{job.title} (#{job.pk})", organisation=job.organisation, task=job.task,
        weights_path=str(target.relative_to(settings.STATE_DIR)), sha256=digest, size=staged.stat().st_size,
        card={}, released_by=actor,
    )
    model.card = model_card(job, model, task, intended_use, release_event)
    model.save(update_fields=["card"])
    record(EventType.MODELS_REGISTERED, actor=actor_of(actor), subject=subject_of(model),
           payload={"sha256": digest, "card": model.card},
           inputs=[subject_of(job), subject_of(job.corpus)]
           + ([subject_of(job.base_result)] if job.base_result_id else []))
    return model


def model_card(job: Job, model: TrainedModel, task, intended_use: str, release_event) -> dict:
    application = job.application
    return {
        "name": model.name,
        "task": task.describe(),
        "kind": job.kind,
        "dataset": job.dataset.slug,
        "corpus_version": job.corpus.version,
        "corpus_sha256": job.corpus.sha256,
        "privacy": {**job.privacy, "accountant_epsilon": job.privacy.get("epsilon"),
                    "epsilon": float(job.epsilon_spent), "delta": job.delta, "target_epsilon": float(job.epsilon)},
        "metrics": job.metrics,
        "intended_use": intended_use or application.purpose,
        "out_of_scope": "Identifying, locating or profiling people or rooms; any use outside the application's "
                        "stated purpose.",
        "licence": {"application": application.pk, "organisation": job.organisation.code,
                    "purpose_category": application.purpose_category, "purpose": application.purpose},
        "lineage": {"job": subject_of(job), "corpus": subject_of(job.corpus),
                    "application": subject_of(application), "released_seq": release_event.seq},
        "derived_from": job.params.get("attribution"),
        "weights": {"sha256": model.sha256, "bytes": model.size, "format": "PyTorch state_dict (torch.load "
                                                                           "weights_only=True)"},
    }


@transaction.atomic(durable=True)
def reject_output(*, actor, job: Job, reason: str) -> Job:
    rules.check_decide_job(actor, job)
    job = _locked(job, JobStatus.REVIEW)
    reason = text(reason, "reason", limit=REASON_MAX)
    job.status, job.reviewed_by, job.review_note = JobStatus.REJECTED, actor, reason
    job.save(update_fields=["status", "reviewed_by", "review_note", "updated_at"])
    record(EventType.JOBS_REJECTED, actor=actor_of(actor), subject=subject_of(job), payload={"stage": "output",
                                                                                      "reason": reason})
    return job


@transaction.atomic(durable=True)
def record_outputs_download(*, actor, job: Job) -> Job:
    rules.check_download_job_outputs(actor, job)
    record(EventType.JOBS_OUTPUTS_DOWNLOADED, actor=actor_of(actor), subject=subject_of(job),
           payload={"output_sha256": job.outcome.get("output_sha256", "")})
    return job


@transaction.atomic(durable=True)
def record_model_download(*, actor, model: TrainedModel) -> TrainedModel:
    rules.check_download_model(actor, model)
    record(EventType.MODELS_DOWNLOADED, actor=actor_of(actor), subject=subject_of(model), payload={"sha256": model.sha256})
    return model
