"""API for sandbox jobs and the model registry.

Applicants submit jobs and follow them; stewards of the data's bureau approve or reject
them and review their held output (file by file, before releasing it); model cards are read
like jobs, and weights go only to the organisation that trained them.

What a job wrote reaches the applicant only through review: they read its status, the fixed
category of a failure and the checks without their findings; the masked log, the findings and
the held files are for the data owner's stewards (`rules.reviews_job_output`)."""
from __future__ import annotations


from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.models import Dataset
from corpora.models import CorpusVersion
from kernel.paths import state_path
from progress.models import TaskProgress

from sandbox import checks, code_to_data

from . import actions, data, rules
from .models import LIMIT_MAXIMA, Job, SandboxPolicy, SyftDataset, TrainedModel


class JobProgressSerializer(serializers.Serializer):
    """The job's worker task, as far as it got."""

    percent = serializers.FloatField()
    stage = serializers.CharField()
    status = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    corpus = serializers.PrimaryKeyRelatedField(queryset=CorpusVersion.objects.all(), required=False,
                                                help_text="a version of the dataset; default: the latest")
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    params = serializers.JSONField(required=False, help_text=(
        "epochs, batch_size, learning_rate, target_epsilon, delta, max_grad_norm, accountant (rdp|prv); "
        "federated jobs also rounds, min_nodes, secagg, dp (client|server), local_dp, server_optimizer "
        "(fedadam|fedavg), server_lr; code-to-data jobs "
        "target_epsilon, delta and, where the dataset's outputs are DP aggregates, aggregate: "
        "{by: [group columns], values: {column: [lo, hi]}}"))
    limits = serializers.JSONField(required=False, allow_null=True, help_text=(
        "cpu_seconds, memory_mb, wall_seconds, processes, output_mb (one file), threads, disk_mb (the work "
        "folder in total), files; each at most the dataset's sandbox policy allows; those left out take the "
        "platform's default capped at that maximum. The job shows the limits it runs under."))
    progress = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    checks = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "title", "dataset", "corpus", "application", "organisation", "submitted_by", "task",
            "code", "syft_dataset", "params", "limits", "epsilon", "delta", "status", "status_reason", "epsilon_spent",
            "privacy",
            "history", "metrics", "outcome", "checks", "approved_by", "reviewed_by", "review_note", "progress",
            "model", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = [
            "id", "application", "organisation", "submitted_by", "syft_dataset", "epsilon", "delta", "status",
            "status_reason",
            "epsilon_spent", "privacy", "history", "metrics", "outcome", "checks", "approved_by", "reviewed_by",
            "review_note", "progress", "model", "created_at", "started_at", "finished_at",
        ]
        extra_kwargs = {"task": {"required": False}, "code": {"required": False}}

    @extend_schema_field(JobProgressSerializer(allow_null=True))
    def get_progress(self, job) -> dict | None:
        if job.task_id is None:
            return None
        task = TaskProgress.objects.filter(pk=job.task_id).first()
        return None if task is None else {"percent": task.percent, "stage": task.stage_text(), "status": task.status}

    def get_model(self, job) -> int | None:
        model = getattr(job, "model", None)
        return model.pk if model is not None else None

    def _reviews(self, job) -> bool:
        request = self.context.get("request")
        return request is not None and rules.reviews_job_output(request.user, job)

    def get_checks(self, job) -> list[dict]:
        """Each check's name, result and fixed detail; its finding (files, counts) for the data
        owner's stewards only."""
        return job.checks if self._reviews(job) else checks.public(job.checks)

    def get_outcome(self, job) -> dict:
        """How the run ended. The held output's hash only once it is released (before that it
        would let an applicant test guesses of what the output holds)."""
        if self._reviews(job) or job.status == "released":
            return job.outcome
        return {k: v for k, v in job.outcome.items() if k != "output_sha256"}


class JobDetailSerializer(JobSerializer):
    """The log is the data owner's stewards': it is what the job printed (masked)."""

    log = serializers.SerializerMethodField()
    held_outputs = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log", "held_outputs"]
        read_only_fields = [*JobSerializer.Meta.read_only_fields, "log", "held_outputs"]

    def get_log(self, job) -> str | None:
        return job.log if self._reviews(job) else None

    def get_held_outputs(self, job) -> list[dict] | None:
        """The held output's files (for the data owner's stewards): open each before releasing."""
        if not self._reviews(job) or not job.output_path:
            return None
        request = self.context["request"]
        return [{**f.describe(), "url": request.build_absolute_uri(
            f"/api/jobs/{job.pk}/held-outputs/{f.index}/")} for f in data.held_files(job)]


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "JobNote"  # innovation has a NoteSerializer too


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "JobRejection"  # access has a ReasonSerializer too


class ReleaseSerializer(NoteSerializer):
    intended_use = serializers.CharField(required=False, allow_blank=True, default="",
                                         help_text="for the model card; default: the application's purpose")

    class Meta:
        ref_name = "JobRelease"  # not a releases.Release


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("status", str, description="a job status"),
    OpenApiParameter("dataset", str, description="a dataset slug"),
]))
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 viewsets.GenericViewSet):
    """Sandbox jobs: federated or centralized DP training of a built-in task, or code-to-data."""

    def get_serializer_class(self):
        return JobSerializer if self.action in ("list", "create") else JobDetailSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        qs = rules.visible_jobs(self.request.user, Job.objects.select_related(
            "dataset", "organisation", "submitted_by", "approved_by", "reviewed_by", "model"))
        params = self.request.query_params
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("dataset"):
            qs = qs.filter(dataset__slug=params["dataset"])
        return qs

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.submit_job(
            actor=self.request.user, dataset=data["dataset"], kind=data["kind"], title=data["title"],
            task=data.get("task", ""), code=data.get("code", ""), params=data.get("params") or {},
            limits=data.get("limits"), corpus=data.get("corpus"),
        )

    def _decide(self, request, act, body_class, **fields):
        job = self.get_object()
        body = body_class(data=request.data)
        body.is_valid(raise_exception=True)
        job = act(actor=request.user, job=job, **{f: body.validated_data[f] for f in fields})
        return Response(JobDetailSerializer(job, context={"request": request}).data)

    @extend_schema(request=NoteSerializer, responses=JobDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """A steward of the data's bureau approves the job (and its code); it starts at once."""
        return self._decide(request, actions.approve_job, NoteSerializer, note=True)

    @extend_schema(request=ReasonSerializer, responses=JobDetailSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject a submitted job, or a job's held output, with the reason."""
        job = self.get_object()
        act = actions.reject_output if job.status == "review" else actions.reject_job
        return self._decide(request, act, ReasonSerializer, reason=True)

    @extend_schema(request=ReleaseSerializer, responses=JobDetailSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Release a reviewed output; a trained model goes into the registry with its card."""
        return self._decide(request, actions.release_job, ReleaseSerializer, note=True, intended_use=True)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def outputs(self, request, pk=None):
        """A released code-to-data job's outputs, as a zip, for the organisation that ran it."""
        job = actions.record_outputs_download(actor=request.user, job=self.get_object())
        folder = state_path(job.output_path)
        return _zip_response(data.zip_folder(folder), f"miliao-job-{job.pk}-outputs.zip",
                             job.outcome.get("output_sha256", ""))


    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"held-outputs/(?P<index>\d+)", url_name="held-output")
    def held_output(self, request, pk=None, index=None):
        """One file of a job's held output, for the data owner's stewards to open before they
        release it: always a download (`attachment`), as text/plain or octet-stream, never
        rendered by the browser."""
        job = self.get_object()
        rules.check_open_held_output(request.user, job)
        held = {f.index: f for f in data.held_files(job)}.get(int(index))
        if held is None:
            return Response({"detail": f"job #{job.pk} holds no file #{index}"}, status=404)
        return held_file_response(job, held)


def held_file_response(job, held) -> HttpResponse:
    response = HttpResponse(held.path.read_bytes(), content_type=held.content_type)
    response["Content-Disposition"] = f'attachment; filename="{held.download_name(job)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-SHA256"] = held.sha256
    return response


def _zip_response(content: bytes, filename: str, sha256: str = "") -> HttpResponse:
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if sha256:
        response["X-Content-SHA256"] = sha256
    return response


POLICY_MAXIMA = sorted(set(LIMIT_MAXIMA.values()))


class SandboxPolicySerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = SandboxPolicy
        fields = ["dataset", "code_outputs", "min_cell_count", "max_output_bytes", *POLICY_MAXIMA, "updated_by",
                  "updated_at"]
        read_only_fields = ["dataset", "updated_by", "updated_at"]


POLICY_SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="a compute-only dataset's slug")


class SandboxPolicyViewSet(viewsets.ViewSet):
    """How a compute-only dataset's code-to-data outputs leave the platform (by dataset slug):
    `dp` (OpenDP aggregates of per-record contributions) or `reviewed` (files a steward reads),
    with the automatic checks' limits; and the most resources a job on the dataset may ask for
    (`max_*`: memory, CPU and wall-clock seconds, processes, the work folder's total disk and
    file count, one file's size). Any logged-in user reads it; the owning bureau's stewards
    set it."""

    lookup_field = "slug"
    serializer_class = SandboxPolicySerializer

    def _dataset(self, slug) -> Dataset:
        return get_object_or_404(Dataset.objects.filter(data_class="compute_only"), slug=slug)

    @extend_schema(parameters=[POLICY_SLUG], responses=SandboxPolicySerializer)
    def retrieve(self, request, slug=None):
        return Response(SandboxPolicySerializer(SandboxPolicy.of(self._dataset(slug))).data)

    @extend_schema(parameters=[POLICY_SLUG], request=SandboxPolicySerializer, responses=SandboxPolicySerializer)
    def update(self, request, slug=None):
        dataset = self._dataset(slug)
        body = SandboxPolicySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        current = SandboxPolicy.of(dataset)
        fields = {f: body.validated_data.get(f, getattr(current, f))
                  for f in ("code_outputs", "min_cell_count", "max_output_bytes", *POLICY_MAXIMA)}
        policy = actions.set_sandbox_policy(actor=request.user, dataset=dataset, **fields)
        return Response(SandboxPolicySerializer(policy).data)


class SyftDatasetSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    corpus = serializers.PrimaryKeyRelatedField(queryset=CorpusVersion.objects.all(), required=False,
                                                help_text="a version of the dataset; default: the latest")
    version = serializers.IntegerField(source="corpus.version", read_only=True)
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    columns = serializers.SerializerMethodField()

    class Meta:
        model = SyftDataset
        fields = ["id", "dataset", "corpus", "version", "name", "owner", "mock_sha256", "private_sha256",
                  "mock_rows", "private_rows", "columns", "published_by", "published_at"]
        read_only_fields = ["id", "version", "name", "owner", "mock_sha256", "private_sha256", "mock_rows",
                            "private_rows", "columns", "published_by", "published_at"]

    def get_columns(self, obj) -> list[str]:
        import pyarrow.parquet as pq

        return pq.read_schema(data.published(obj).box / obj.owner / "public" / "syft_datasets" / obj.name
                              / code_to_data.DATA_FILE).names


class SyftDatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         viewsets.GenericViewSet):
    """Compute-only datasets published for code-to-data as PySyft datasets. Anyone logged in
    lists them and downloads the mock part; the owning bureau's stewards publish a version."""

    serializer_class = SyftDatasetSerializer
    queryset = SyftDataset.objects.select_related("dataset", "corpus", "published_by")

    def perform_create(self, serializer):
        body = serializer.validated_data
        serializer.instance = actions.publish_syft_dataset(actor=self.request.user, dataset=body["dataset"],
                                                           corpus=body.get("corpus"))

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def mock(self, request, pk=None):
        """The public part as a zip laid out as a PySyft datasite, with a guide: run your
        script against it with SYFTBOX_FOLDER and SYFTBOX_EMAIL set, then submit it as a job."""
        syft_dataset = self.get_object()
        content = code_to_data.mock_archive(data.published(syft_dataset).box, owner=syft_dataset.owner,
                                            name=syft_dataset.name, guide=data.mock_guide(syft_dataset))
        return _zip_response(content, f"{syft_dataset.name}-v{syft_dataset.corpus.version}-mock.zip",
                             syft_dataset.mock_sha256)


class TrainedModelSerializer(serializers.ModelSerializer):
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    released_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TrainedModel
        fields = ["id", "name", "job", "organisation", "task", "sha256", "size", "card", "released_by",
                  "released_at"]
        read_only_fields = fields


class TrainedModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The model registry: released models and their cards."""

    serializer_class = TrainedModelSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TrainedModel.objects.none()
        return rules.visible_models(self.request.user, TrainedModel.objects.select_related(
            "organisation", "released_by", "job__dataset"))

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def weights(self, request, pk=None):
        """The weights, for the organisation that trained the model."""
        model = actions.record_model_download(actor=request.user, model=self.get_object())
        path = state_path(model.weights_path)
        response = FileResponse(open(path, "rb"), as_attachment=True, filename=f"miliao-model-{model.pk}.pt",
                                content_type="application/octet-stream")
        response["X-Content-SHA256"] = model.sha256
        return response

