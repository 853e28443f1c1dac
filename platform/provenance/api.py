"""API for the provenance event log: read it, and verify it in the background."""
from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import permissions
from progress.api import TaskProgressSerializer

from . import actions
from .models import LineageEvent


class LineageEventSerializer(serializers.ModelSerializer):
    payload = serializers.SerializerMethodField()
    recorded_at = serializers.SerializerMethodField()

    class Meta:
        model = LineageEvent
        fields = ["seq", "prev_hash", "hash", "event_type", "actor", "subject", "payload", "recorded_at"]

    def get_payload(self, event) -> dict:
        try:
            return json.loads(event.payload)
        except ValueError:
            return {"unreadable_payload": event.payload}

    def get_recorded_at(self, event) -> str:
        # The exact text that was hashed, so a reader can recompute the hash.
        return event.as_record().recorded_at


class LineageEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The hash-chained event log (auditors, admins and stewards)."""

    serializer_class = LineageEventSerializer
    lookup_field = "seq"
    auditors_may_post = True  # starting a verification changes no data

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return LineageEvent.objects.none()
        permissions.check_view_events(self.request.user)
        qs = LineageEvent.objects.all()
        params = self.request.query_params
        if params.get("subject"):
            qs = qs.filter(subject=params["subject"])
        if params.get("event_type"):
            qs = qs.filter(event_type=params["event_type"])
        return qs.order_by("-seq")

    @extend_schema(request=None, responses={202: TaskProgressSerializer})
    @action(detail=False, methods=["post"])
    def verify(self, request):
        """Recompute the whole chain in the background; follow the returned task."""
        task = actions.start_event_log_verification(actor=request.user)
        return Response(TaskProgressSerializer(task).data, status=status.HTTP_202_ACCEPTED)
