"""API for sandbox jobs and the model registry.

Applicants submit jobs and follow them; stewards of the data's bureau approve or reject
them and review their held output; model cards are read like jobs, and weights go only to
the organisation that trained them."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import permissions
from catalog.models import Dataset
from corpora.models import CorpusVersion
from progress.models import TaskProgress

from . import actions
from .models import Job, TrainedModel


class JobSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    corpus = serializers.PrimaryKeyRelatedField(queryset=CorpusVersion.objects.all(), required=False,
                                                help_text="a version of the dataset; default: the latest")
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    params = serializers.JSONField(required=False, help_text=(
        "epochs, batch_size, learning_rate, target_epsilon, delta, max_grad_norm, accountant (rdp|prv); "
        "federated jobs also rounds, min_nodes, secagg, dp (client|server), local_dp"))
    limits = serializers.JSONField(required=False, allow_null=True, help_text=(
        "cpu_seconds, memory_mb, wall_seconds, processes, output_mb, threads"))
    progress = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "title", "dataset", "corpus", "application", "organisation", "submitted_by", "task",
            "code", "params", "limits", "epsilon", "delta", "status", "status_reason", "epsilon_spent", "privacy",
            "history", "metrics", "outcome", "checks", "approved_by", "reviewed_by", "review_note", "progress",
            "model", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = [
            "id", "application", "organisation", "submitted_by", "epsilon", "delta", "status", "status_reason",
            "epsilon_spent", "privacy", "history", "metrics", "outcome", "checks", "approved_by", "reviewed_by",
            "review_note", "progress", "model", "created_at", "started_at", "finished_at",
        ]
        extra_kwargs = {"task": {"required": False}, "code": {"required": False}}

    def get_progress(self, job) -> dict | None:
        if job.task_id is None:
            return None
        task = TaskProgress.objects.filter(pk=job.task_id).first()
        return None if task is None else {"percent": task.percent, "stage": task.stage, "status": task.status}

    def get_model(self, job) -> int | None:
        model = getattr(job, "model", None)
        return model.pk if model is not None else None


class JobDetailSerializer(JobSerializer):
    """The log is the steward's and the auditor's: a job's output may echo private rows."""

    log = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log"]
        read_only_fields = [*JobSerializer.Meta.read_only_fields, "log"]

    def get_log(self, job) -> str | None:
        user = self.context["request"].user
        return job.log if permissions.has_role(user, "steward", "auditor", "admin") else None


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True)


class ReleaseSerializer(NoteSerializer):
    intended_use = serializers.CharField(required=False, allow_blank=True, default="",
                                         help_text="for the model card; default: the application's purpose")


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
        qs = permissions.visible_jobs(self.request.user, Job.objects.select_related(
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
        return permissions.visible_models(self.request.user, TrainedModel.objects.select_related(
            "organisation", "released_by", "job__dataset"))

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def weights(self, request, pk=None):
        """The weights, for the organisation that trained the model."""
        model = actions.record_model_download(actor=request.user, model=self.get_object())
        path = Path(settings.STATE_DIR) / model.weights_path
        response = FileResponse(open(path, "rb"), as_attachment=True, filename=f"miliao-model-{model.pk}.pt",
                                content_type="application/octet-stream")
        response["X-Content-SHA256"] = model.sha256
        return response

