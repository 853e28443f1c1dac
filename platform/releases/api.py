"""API for release policies (with a preview) and releases (build, report, publish)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog import rules as catalog_rules
from catalog.models import Dataset
from corpora.models import CorpusVersion

from . import actions, previews, rules
from .models import Release, ReleasePolicy


class ReleasePolicySerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ReleasePolicy
        fields = ["id", "dataset", "version", "spec", "sha256", "created_by", "created_at"]
        read_only_fields = ["id", "version", "sha256", "created_by", "created_at"]


class PreviewSerializer(serializers.Serializer):
    corpus_version = serializers.PrimaryKeyRelatedField(queryset=CorpusVersion.objects.all())
    spec = serializers.JSONField()
    units = serializers.IntegerField(default=2000, min_value=10, max_value=20_000)


class PreviewReportSerializer(serializers.Serializer):
    """The report of a trial release (as a release's `report`): its outputs and the attacks
    run on them. Nothing is stored."""

    outputs = serializers.DictField(child=serializers.DictField(), help_text="by format: path, bytes, sha256, ...")
    attacks = serializers.DictField(child=serializers.DictField(), help_text="by attack: what it measured")


class ReleasePolicyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Versioned release policies; stewards of the owning bureau add versions and preview them."""

    serializer_class = ReleasePolicySerializer
    queryset = ReleasePolicy.objects.select_related("dataset", "created_by")

    def create(self, request, *args, **kwargs):
        rules.check_release_work(request.user)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.save_policy(actor=self.request.user, dataset=data["dataset"], spec=data["spec"])

    @extend_schema(request=PreviewSerializer, responses={200: PreviewReportSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """Run a policy on the first units of a corpus version; nothing is stored."""
        body = PreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        corpus = body.validated_data["corpus_version"]
        catalog_rules.check_manage_dataset(request.user, corpus.dataset)
        spec = actions.parse_spec(body.validated_data["spec"])
        report, _ = previews.preview(corpus, spec, units=body.validated_data["units"])
        return Response(report)


class ReleaseSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(source="corpus.dataset", slug_field="slug", read_only=True)
    corpus_version = serializers.PrimaryKeyRelatedField(source="corpus", queryset=CorpusVersion.objects.all())
    policy = serializers.PrimaryKeyRelatedField(queryset=ReleasePolicy.objects.all())
    task = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Release
        fields = ["id", "dataset", "corpus_version", "policy", "status", "task", "report", "outputs",
                  "created_at", "published_at"]
        read_only_fields = ["id", "dataset", "status", "task", "report", "outputs", "created_at", "published_at"]


class ReleaseViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Releases with their reports. Everyone sees published ones; bureau staff and auditors all."""

    serializer_class = ReleaseSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Release.objects.none()
        return rules.visible_releases(
            self.request.user, Release.objects.select_related("corpus__dataset", "policy")
        )

    @extend_schema(responses={202: ReleaseSerializer})
    def create(self, request, *args, **kwargs):
        """Start building a release of a corpus version under a policy (a worker task)."""
        rules.check_release_work(request.user)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        release = actions.start_release(
            actor=request.user, corpus=body.validated_data["corpus"], policy=body.validated_data["policy"]
        )
        return Response(ReleaseSerializer(release).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Approve publication (stewards of the owning bureau)."""
        release = actions.publish_release(actor=request.user, release=self.get_object())
        return Response(ReleaseSerializer(release).data)
