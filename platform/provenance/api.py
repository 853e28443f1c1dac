"""API for the provenance event log: read it, and verify it in the background."""
from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts import permissions
from miliao.errors import Conflict, InvalidInput
from progress.api import TaskProgressSerializer

from . import actions, anchoring, lineage
from .models import Anchor, LineageEvent


class LineageEventSerializer(serializers.ModelSerializer):
    payload = serializers.SerializerMethodField()
    recorded_at = serializers.SerializerMethodField()

    class Meta:
        model = LineageEvent
        fields = ["seq", "prev_hash", "hash", "hash_version", "event_type", "actor", "subject", "payload",
                  "recorded_at"]

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

    @extend_schema(responses={200: dict, 404: dict})
    @action(detail=True, methods=["get"])
    def proof(self, request, seq=None):
        """The event's Merkle path to its anchored root, with the root's tx, block and registry."""
        event = self.get_object()
        try:
            proof = lineage.inclusion_proof(event.seq)
        except ValueError as exc:
            raise Conflict(f"event {event.seq}: {exc}; run a lineage verification to see what changed") from exc
        if proof is None:
            status_now = anchoring.ledger_status()
            return Response(
                {"detail": f"event {event.seq} is not anchored yet", "anchoring": status_now.to_dict()},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(proof)


class SubjectSerializer(serializers.Serializer):
    subject = serializers.RegexField(
        r"^[a-z_]+\.[a-z_]+:[^\s]+$",
        max_length=200,
        error_messages={"invalid": "an artifact is named like 'releases.release:7'"},
    )


def _subject_from(data) -> str:
    serializer = SubjectSerializer(data=data)
    if not serializer.is_valid():
        raise InvalidInput("subject", "; ".join(str(e) for e in serializer.errors.get("subject", ["required"])))
    return serializer.validated_data["subject"]


def graph_data(graph: lineage.LineageGraph) -> dict:
    depth = graph.depth()
    return {
        "subject": graph.subject,
        "truncated": graph.truncated,
        "nodes": [
            {
                "subject": node,
                "depth": depth[node],
                "events": [
                    {"seq": e.seq, "event_type": e.event_type, "actor": e.actor,
                     "recorded_at": e.as_record().recorded_at, "hash": e.hash}
                    for e in events
                ],
            }
            for node, events in sorted(graph.nodes.items())
        ],
        "edges": [{"source": s, "subject": d, "seq": seq} for s, d, seq in graph.edges],
    }


class LineageViewSet(viewsets.ViewSet):
    """The lineage of an artifact: graph, verification against the chain, PROV-JSON export."""

    auditors_may_post = True  # verifying changes no data

    def _graph(self, request) -> lineage.LineageGraph:
        permissions.check_view_events(request.user)
        subject = _subject_from(request.query_params)
        try:
            return lineage.lineage_graph(subject)
        except lineage.UnknownArtifact as exc:
            raise NotFound(str(exc)) from exc

    @extend_schema(parameters=[SubjectSerializer], responses={200: dict})
    def list(self, request):
        """?subject=releases.release:7 — every artifact it came from and every one made from it."""
        return Response(graph_data(self._graph(request)))

    @extend_schema(request=SubjectSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def verify(self, request):
        """Recompute every event of the lineage and check each proof against the chain."""
        permissions.check_verify_events(request.user)
        subject = _subject_from(request.data)
        try:
            report = lineage.verify_lineage(subject)
        except lineage.UnknownArtifact as exc:
            raise NotFound(str(exc)) from exc
        return Response(report.to_dict())

    @extend_schema(parameters=[SubjectSerializer], responses={200: dict})
    @action(detail=False, methods=["get"])
    def prov(self, request):
        """The lineage as W3C PROV-JSON; ledger/verify_prov.py checks it with web3.py alone."""
        graph = self._graph(request)
        doc = lineage.prov_document(graph.subject)
        response = Response(doc, content_type="application/json")
        name = graph.subject.replace(":", "-").replace(".", "-")
        response["Content-Disposition"] = f'attachment; filename="lineage-{name}.prov.json"'
        return response


class AnchorSerializer(serializers.ModelSerializer):
    registry = serializers.CharField(source="registry.address")
    chain_id = serializers.IntegerField(source="registry.chain_id")

    class Meta:
        model = Anchor
        fields = [
            "id", "first_seq", "last_seq", "root", "prev_root", "status", "tx_hash", "block_number",
            "block_hash", "confirmations", "attempts", "created_at", "submitted_at", "confirmed_at",
            "registry", "chain_id",
        ]


class AnchorViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Batches of events anchored on the chain, and how far anchoring lags the log."""

    serializer_class = AnchorSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Anchor.objects.none()
        permissions.check_view_events(self.request.user)
        return Anchor.objects.select_related("registry").order_by("-first_seq")

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"], url_path="status")
    def lag(self, request):
        """Head of the log, last anchored seq, the lag in events and seconds, and the last error."""
        permissions.check_view_events(request.user)
        return Response(anchoring.ledger_status().to_dict())
