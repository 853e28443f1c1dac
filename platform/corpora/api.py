"""API for corpus versions and their ingest."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from catalog.models import Dataset
from progress.api import TaskProgressSerializer

from . import actions
from .models import CorpusVersion


class CorpusVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = CorpusVersion
        fields = ["id", "dataset", "version", "source", "source_crs", "units", "kinds", "extent", "sha256",
                  "created_by", "created_at"]
        read_only_fields = fields


class IngestSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    file = serializers.FileField(required=False, help_text="GeoJSON, GeoPackage, GeoParquet or a zip of one")
    declared_crs = serializers.CharField(required=False, allow_blank=True, default="")
    seed = serializers.IntegerField(required=False, help_text="generate a synthetic district instead")
    rooms = serializers.IntegerField(required=False)

    def validate(self, data):
        if ("file" in data) == ("seed" in data):
            raise serializers.ValidationError({"file": ["send a file, or a seed and rooms to generate, not both"]})
        if "seed" in data and "rooms" not in data:
            raise serializers.ValidationError({"rooms": ["how many rooms to generate"]})
        return data


class CorpusVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Immutable versions of each dataset's corpus (metadata and hash; never the units)."""

    serializer_class = CorpusVersionSerializer
    queryset = CorpusVersion.objects.select_related("dataset", "created_by")
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        qs = super().get_queryset()
        if self.request.query_params.get("dataset"):
            qs = qs.filter(dataset__slug=self.request.query_params["dataset"])
        return qs

    @extend_schema(request=IngestSerializer, responses={202: TaskProgressSerializer})
    @action(detail=False, methods=["post"])
    def ingest(self, request):
        """Ingest a new version (stewards of the owning bureau); follow the returned task."""
        body = IngestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "file" in data:
            task = actions.start_upload_ingest(actor=request.user, dataset=data["dataset"], upload=data["file"],
                                               declared_crs=data["declared_crs"])
        else:
            task = actions.start_generated_ingest(actor=request.user, dataset=data["dataset"], seed=data["seed"],
                                                  rooms=data["rooms"])
        return Response(TaskProgressSerializer(task).data, status=status.HTTP_202_ACCEPTED)
