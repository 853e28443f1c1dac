"""API for applications: submit, list, approve, reject."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import permissions
from catalog.models import Dataset

from . import actions
from .models import Application


class ApplicationSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    applicant = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Application
        fields = [
            "id", "dataset", "organisation", "applicant", "purpose", "status", "reviewer",
            "decision_reason", "submitted_at", "decided_at",
        ]
        read_only_fields = [
            "id", "organisation", "applicant", "status", "reviewer", "decision_reason",
            "submitted_at", "decided_at",
        ]


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ApplicationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Applications. Applicants see their organisation's; stewards also those for their datasets."""

    serializer_class = ApplicationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Application.objects.none()
        return permissions.visible_applications(
            self.request.user,
            Application.objects.select_related("dataset__owner", "organisation", "applicant", "reviewer"),
        )

    def create(self, request, *args, **kwargs):
        permissions.check_submit_application(request.user, None)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = actions.submit_application(
            actor=self.request.user,
            dataset=serializer.validated_data["dataset"],
            purpose=serializer.validated_data["purpose"],
        )

    def _decide(self, request, decide):
        application = self.get_object()
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        application = decide(actor=request.user, application=application, reason=body.validated_data["reason"])
        return Response(ApplicationSerializer(application).data, status=status.HTTP_200_OK)

    @extend_schema(request=DecisionSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve (stewards of the owning bureau, never for their own organisation)."""
        return self._decide(request, actions.approve_application)

    @extend_schema(request=DecisionSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject with a reason (stewards of the owning bureau)."""
        return self._decide(request, actions.reject_application)
