"""API for the dataset registry."""
from __future__ import annotations

from rest_framework import mixins, serializers, viewsets

from accounts import permissions
from accounts.models import Organisation

from . import actions
from .models import Dataset


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="code", read_only=True)
    holders = serializers.SlugRelatedField(
        slug_field="code", many=True, queryset=Organisation.objects.all(), required=False
    )

    class Meta:
        model = Dataset
        fields = [
            "id", "slug", "title", "title_en", "description", "data_class", "owner", "holders", "created_at",
        ]
        read_only_fields = ["id", "owner", "created_at"]
        extra_kwargs = {"slug": {"validators": []}}


class DatasetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Datasets: every logged-in user reads the registry; stewards register their bureau's."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.select_related("owner").prefetch_related("holders")
    lookup_field = "slug"

    def create(self, request, *args, **kwargs):
        permissions.check_register_dataset(request.user, request.user.organisation)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = actions.register_dataset(actor=self.request.user, **serializer.validated_data)
