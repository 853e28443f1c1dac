"""Training and code-to-data jobs on compute-only data, and the registry of released models.
Only jobs.actions writes these."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from access.models import Application
from accounts.models import Organisation
from budgets.models import BudgetEntry
from catalog.models import Dataset
from corpora.models import CorpusVersion


class JobKind(models.TextChoices):
    FEDERATED = "federated", _("联邦学习")
    CENTRALIZED = "centralized", _("集中式差分隐私训练")
    CODE = "code", _("代码到数据")


class JobStatus(models.TextChoices):
    SUBMITTED = "submitted", _("待审批")
    APPROVED = "approved", _("已批准")
    RUNNING = "running", _("运行中")
    REVIEW = "review", _("待审核输出")
    RELEASED = "released", _("已发布")
    REJECTED = "rejected", _("已驳回")
    FAILED = "failed", _("失败")


FINISHED = {JobStatus.RELEASED, JobStatus.REJECTED, JobStatus.FAILED}


class CodeOutputs(models.TextChoices):
    DP = "dp", _("差分隐私聚合")
    REVIEWED = "reviewed", _("人工审核")


# A job's resource limits (sandbox.isolation.Limits) and the policy field holding each one's maximum.
LIMIT_MAXIMA = {"memory_mb": "max_memory_mb", "cpu_seconds": "max_cpu_seconds", "wall_seconds": "max_wall_seconds",
                "processes": "max_processes", "threads": "max_processes", "disk_mb": "max_disk_mb",
                "files": "max_files", "output_mb": "max_output_mb"}


class SandboxPolicy(models.Model):
    """How a compute-only dataset's code-to-data outputs leave the platform: as DP aggregates
    of per-record contributions (sandbox.dp_aggregates), or as files a steward reviews; the
    limits the automatic output checks hold them to; and the most resources a job on the
    dataset may ask for (its owner's to set, not the applicant's)."""

    dataset = models.OneToOneField(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT,
                                   related_name="sandbox_policy")
    code_outputs = models.CharField(_("代码作业输出"), max_length=20, choices=CodeOutputs.choices,
                                    default=CodeOutputs.DP)
    min_cell_count = models.PositiveIntegerField(_("最小单元计数"), default=10)
    max_output_bytes = models.PositiveIntegerField(_("输出上限（字节）"), default=1_000_000)
    max_memory_mb = models.PositiveIntegerField(_("内存上限（MB）"), default=8192)
    max_cpu_seconds = models.PositiveIntegerField(_("CPU 时间上限（秒）"), default=3600)
    max_wall_seconds = models.PositiveIntegerField(_("运行时长上限（秒）"), default=3600)
    max_processes = models.PositiveIntegerField(_("进程与线程上限"), default=128)
    max_disk_mb = models.PositiveIntegerField(_("磁盘总量上限（MB）"), default=2048)
    max_files = models.PositiveIntegerField(_("文件数上限"), default=20_000)
    max_output_mb = models.PositiveIntegerField(_("单个文件上限（MB）"), default=1024)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("沙箱策略")
        verbose_name_plural = _("沙箱策略")

    def __str__(self) -> str:
        return f"{self.dataset.slug}: {self.code_outputs}"

    @classmethod
    def of(cls, dataset: Dataset) -> SandboxPolicy:
        """The dataset's policy, or the defaults when its steward has set none."""
        return cls.objects.filter(dataset=dataset).first() or cls(dataset=dataset)

    def limit_maxima(self) -> dict[str, int]:
        """The most of each resource (`sandbox.isolation.Limits` field) a job may ask for."""
        return {limit: getattr(self, field) for limit, field in LIMIT_MAXIMA.items()}


class SyftDataset(models.Model):
    """A compute-only dataset version published as a PySyft dataset (sandbox.code_to_data):
    synthetic mock rows, public, beside the private rows, in a datasite folder of its own."""

    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT,
                                related_name="syft_datasets")
    corpus = models.OneToOneField(CorpusVersion, verbose_name=_("数据版本"), on_delete=models.PROTECT,
                                  related_name="syft_dataset")
    name = models.CharField(_("名称"), max_length=100)  # what sy.resolve_dataset_file_path takes
    owner = models.CharField(_("数据站点"), max_length=200)  # the bureau's datasite email
    path = models.CharField(max_length=500)  # the datasite folder, relative to STATE_DIR
    mock_sha256 = models.CharField(max_length=64)
    private_sha256 = models.CharField(max_length=64)
    mock_rows = models.PositiveIntegerField()
    private_rows = models.PositiveIntegerField()
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-published_at"]
        verbose_name = _("PySyft 数据集")
        verbose_name_plural = _("PySyft 数据集")

    def __str__(self) -> str:
        return f"{self.name} v{self.corpus.version}"


class Job(models.Model):
    kind = models.CharField(_("类型"), max_length=20, choices=JobKind.choices)
    title = models.CharField(_("名称"), max_length=200)
    dataset = models.ForeignKey(Dataset, verbose_name=_("数据集"), on_delete=models.PROTECT, related_name="jobs")
    corpus = models.ForeignKey(CorpusVersion, verbose_name=_("数据版本"), on_delete=models.PROTECT, related_name="jobs")
    application = models.ForeignKey(Application, verbose_name=_("数据申请"), on_delete=models.PROTECT,
                                    related_name="jobs")
    organisation = models.ForeignKey(Organisation, verbose_name=_("组织"), on_delete=models.PROTECT,
                                     related_name="jobs")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("提交人"), on_delete=models.PROTECT,
                                     related_name="jobs")
    task = models.CharField(_("内置任务"), max_length=40, blank=True)  # sandbox.tasks name; "" for code
    syft_dataset = models.ForeignKey(SyftDataset, verbose_name=_("PySyft 数据集"), on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="jobs")  # code-to-data jobs
    # A shared result (innovation's showcase) whose weights the training starts from.
    base_result = models.ForeignKey("innovation.ShowcaseItem", verbose_name=_("基础模型"), on_delete=models.PROTECT,
                                    null=True, blank=True, related_name="derived_jobs")
    code = models.TextField(_("代码"), blank=True)  # code-to-data: the script the steward reviews
    # sandbox.training.TrainSpec fields, plus rounds/min_nodes/secagg/client_dp for federated jobs
    params = models.JSONField(_("参数"), default=dict)
    limits = models.JSONField(_("资源限制"), default=dict)  # sandbox.isolation.Limits
    epsilon = models.DecimalField(_("目标 ε"), max_digits=12, decimal_places=6)
    delta = models.FloatField(_("δ"))
    status = models.CharField(_("状态"), max_length=20, choices=JobStatus.choices, default=JobStatus.SUBMITTED)
    status_reason = models.TextField(_("状态说明"), blank=True)
    task_id = models.UUIDField(null=True, blank=True)  # progress.TaskProgress of the run
    budget_entry = models.ForeignKey(BudgetEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    epsilon_spent = models.DecimalField(_("实际 ε"), max_digits=12, decimal_places=6, null=True, blank=True)
    privacy = models.JSONField(_("隐私核算"), default=dict, blank=True)  # the accountant's figures
    history = models.JSONField(_("训练曲线"), default=list, blank=True)  # per epoch or round
    metrics = models.JSONField(_("评估指标"), default=dict, blank=True)
    outcome = models.JSONField(_("运行结果"), default=dict, blank=True)  # isolation outcome, nodes, timing
    checks = models.JSONField(_("输出检查"), default=list, blank=True)
    log = models.TextField(_("日志"), blank=True)
    output_path = models.CharField(max_length=500, blank=True)  # relative to STATE_DIR
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    review_note = models.TextField(_("审核意见"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("作业")
        verbose_name_plural = _("作业")

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class TrainedModel(models.Model):
    """A released model: its weights, and the card that says what it is and where it came from."""

    job = models.OneToOneField(Job, verbose_name=_("作业"), on_delete=models.PROTECT, related_name="model")
    name = models.CharField(_("名称"), max_length=200)
    organisation = models.ForeignKey(Organisation, verbose_name=_("组织"), on_delete=models.PROTECT,
                                     related_name="models")
    task = models.CharField(_("任务"), max_length=40)
    weights_path = models.CharField(max_length=500)  # relative to STATE_DIR
    sha256 = models.CharField(_("哈希"), max_length=64)
    size = models.PositiveBigIntegerField(_("大小"))
    card = models.JSONField(_("模型卡"), default=dict)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-released_at"]
        verbose_name = _("模型")
        verbose_name_plural = _("模型")

    def __str__(self) -> str:
        return self.name
