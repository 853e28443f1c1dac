"""API for risk alerts: stewards see their bureau's, auditors and admins all; stewards acknowledge."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response


from . import actions, rules
from .models import Alert


class AlertSerializer(serializers.ModelSerializer):
    bureau = serializers.CharField(source="bureau.code")
    organisation = serializers.CharField(source="organisation.code", default=None, allow_null=True)
    dataset = serializers.CharField(source="dataset.slug", default=None, allow_null=True)
    message = serializers.CharField(source="message_text", read_only=True)  # in the request's language

    class Meta:
        model = Alert
        fields = [
            "id", "kind", "severity", "status", "bureau", "dataset", "organisation", "licence", "subject", "message",
            "detail", "licence_suspended", "emailed_to", "created_at", "acknowledged_at", "note",
        ]


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, allow_blank=True)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Alert.objects.none()
        qs = rules.visible_alerts(self.request.user, Alert.objects.select_related("bureau", "organisation", "dataset"))
        params = self.request.query_params
        for field in ("status", "severity", "kind"):
            if params.get(field):
                qs = qs.filter(**{field: params[field]})
        return qs

    @extend_schema(request=AcknowledgeSerializer, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        data = AcknowledgeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        alert = actions.acknowledge_alert(actor=request.user, alert=alert, note=data.validated_data["note"])
        return Response(AlertSerializer(alert).data)
