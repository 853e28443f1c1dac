"""API for the provenance event log: read it, and verify it in the background."""
from __future__ import annotations

import json

from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from django.utils.translation import gettext as _

from kernel.errors import Conflict, InvalidInput
from progress.api import TaskProgressSerializer

from . import actions, anchoring, lineage, rules
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


# --- what the read-only answers look like (for the schema) ----------------------------------


class AnchorRefSerializer(serializers.Serializer):
    """The anchor a proof leads to: its root, the batch it covers, and where it is on the chain."""

    root = serializers.CharField()
    first_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    prev_root = serializers.CharField()
    tx_hash = serializers.CharField()
    block_number = serializers.IntegerField(allow_null=True)
    block_hash = serializers.CharField()
    confirmations = serializers.IntegerField()
    chain_id = serializers.IntegerField()
    registry = serializers.CharField(help_text="the registry contract's address")


class InclusionProofSerializer(serializers.Serializer):
    """An event's Merkle path (hex siblings, lowest first) to its anchored root."""

    seq = serializers.IntegerField()
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    path = serializers.ListField(child=serializers.CharField())
    root = serializers.CharField()
    anchor = AnchorRefSerializer()


class PendingAnchorSerializer(serializers.Serializer):
    first_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    status = serializers.CharField()
    tx_hash = serializers.CharField()
    attempts = serializers.IntegerField()


class LedgerStatusSerializer(serializers.Serializer):
    """How far anchoring lags the event log, and why (times are ISO 8601)."""

    head_seq = serializers.IntegerField()
    anchored_seq = serializers.IntegerField()
    unanchored = serializers.IntegerField()
    oldest_unanchored_at = serializers.CharField(allow_null=True)
    lag_seconds = serializers.FloatField(allow_null=True)
    last_anchor_at = serializers.CharField(allow_null=True)
    anchors = serializers.IntegerField()
    pending_anchor = PendingAnchorSerializer(allow_null=True)
    chain = serializers.CharField()
    failures = serializers.IntegerField()
    last_error = serializers.CharField()
    next_attempt_at = serializers.CharField(allow_null=True)


class GraphEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    actor = serializers.CharField()
    recorded_at = serializers.CharField()
    hash = serializers.CharField()


class GraphNodeSerializer(serializers.Serializer):
    subject = serializers.CharField()
    depth = serializers.IntegerField()
    events = GraphEventSerializer(many=True)


class GraphEdgeSerializer(serializers.Serializer):
    source = serializers.CharField()
    subject = serializers.CharField()
    seq = serializers.IntegerField()


class LineageGraphSerializer(serializers.Serializer):
    """Every artifact the subject came from and every one made from it, with their events."""

    subject = serializers.CharField()
    truncated = serializers.BooleanField()
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)


class FindingSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField(help_text="edited, deleted, inserted, reordered, not_on_chain, proof_mismatch "
                                           "or link_mismatch")
    message = serializers.CharField()


class LineageReportSerializer(serializers.Serializer):
    """A lineage recomputed event by event and checked against its anchors on the chain."""

    subject = serializers.CharField()
    ok = serializers.BooleanField()
    events = serializers.IntegerField()
    anchored = serializers.IntegerField()
    unanchored = serializers.ListField(child=serializers.IntegerField())
    roots = serializers.ListField(child=serializers.DictField())
    findings = FindingSerializer(many=True)
    chain_error = serializers.CharField(allow_blank=True)
    elapsed_ms = serializers.FloatField()


class ProvDocumentSerializer(serializers.Serializer):
    """A W3C PROV-JSON document (https://www.w3.org/submissions/prov-json/): records by kind,
    each keyed by its qualified name."""

    prefix = serializers.DictField(child=serializers.CharField())
    entity = serializers.DictField(child=serializers.DictField(), required=False)
    activity = serializers.DictField(child=serializers.DictField(), required=False)
    agent = serializers.DictField(child=serializers.DictField(), required=False)
    wasGeneratedBy = serializers.DictField(child=serializers.DictField(), required=False)  # noqa: N815
    used = serializers.DictField(child=serializers.DictField(), required=False)
    wasDerivedFrom = serializers.DictField(child=serializers.DictField(), required=False)  # noqa: N815
    wasAssociatedWith = serializers.DictField(child=serializers.DictField(), required=False)  # noqa: N815


class EventFilterSerializer(serializers.Serializer):
    """The event log's filters, for the API's list and the portal's event page alike."""

    event_type = serializers.CharField(required=False, allow_blank=True, max_length=80)
    subject = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                    help_text="exactly, e.g. release:3")
    actor = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                  help_text="a username, or an actor label as events carry it (system, user:3:steward)")
    since = serializers.DateField(required=False, allow_null=True, help_text="recorded on or after this day")
    until = serializers.DateField(required=False, allow_null=True, help_text="recorded on or before this day")

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": "must not be before since"})
        return attrs

    def filter(self, qs):
        """The events matching every filter given (call after is_valid)."""
        found = self.validated_data
        if found.get("subject"):
            qs = qs.filter(subject=found["subject"])
        if found.get("event_type"):
            qs = qs.filter(event_type=found["event_type"])
        if found.get("actor"):
            actor = found["actor"]
            qs = qs.filter(Q(actor=actor) | Q(actor__startswith="user:", actor__endswith=f":{actor}"))
        if found.get("since"):
            qs = qs.filter(recorded_at__date__gte=found["since"])
        if found.get("until"):
            qs = qs.filter(recorded_at__date__lte=found["until"])
        return qs


class LineageEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The hash-chained event log (auditors, admins and stewards)."""

    serializer_class = LineageEventSerializer
    lookup_field = "seq"
    auditors_may_post = True  # starting a verification changes no data

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return LineageEvent.objects.none()
        rules.check_view_events(self.request.user)
        qs = LineageEvent.objects.all()
        if self.action == "list":
            filters = EventFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            qs = filters.filter(qs)
        return qs.order_by("-seq")

    @extend_schema(parameters=[EventFilterSerializer])
    def list(self, request, *args, **kwargs):
        """Events, newest first, matching every filter given; a bad filter is a 400 naming it."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={202: TaskProgressSerializer})
    @action(detail=False, methods=["post"])
    def verify(self, request):
        """Recompute the whole chain in the background; follow the returned task."""
        task = actions.start_event_log_verification(actor=request.user)
        return Response(TaskProgressSerializer(task).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: InclusionProofSerializer, 404: OpenApiResponse(
        description="No such event, or the event is not anchored yet (`anchoring` says how far anchoring lags).")})
    @action(detail=True, methods=["get"])
    def proof(self, request, seq=None):
        """The event's Merkle path to its anchored root, with the root's tx, block and registry."""
        event = self.get_object()
        try:
            proof = lineage.inclusion_proof(event.seq)
        except ValueError as exc:
            raise Conflict(_("event %(event_seq)s: %(exc)s; run a lineage verification to see what changed")
                           % {"event_seq": event.seq, "exc": exc}) from exc
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


UNKNOWN_ARTIFACT = OpenApiResponse(description="No artifact of that name has any event.")


class LineageViewSet(viewsets.ViewSet):
    """The lineage of an artifact: graph, verification against the chain, PROV-JSON export."""

    auditors_may_post = True  # verifying changes no data

    def _graph(self, request) -> lineage.LineageGraph:
        rules.check_view_events(request.user)
        subject = _subject_from(request.query_params)
        try:
            return lineage.lineage_graph(subject)
        except lineage.UnknownArtifact as exc:
            raise NotFound(str(exc)) from exc

    @extend_schema(summary="The lineage graph of an artifact", parameters=[SubjectSerializer],
                   responses={200: LineageGraphSerializer, 404: UNKNOWN_ARTIFACT})
    def list(self, request):
        """?subject=releases.release:7 — every artifact it came from and every one made from it."""
        return Response(graph_data(self._graph(request)))

    @extend_schema(request=SubjectSerializer, responses={200: LineageReportSerializer, 404: UNKNOWN_ARTIFACT})
    @action(detail=False, methods=["post"])
    def verify(self, request):
        """Recompute every event of the lineage and check each proof against the chain."""
        rules.check_verify_events(request.user)
        subject = _subject_from(request.data)
        try:
            report = lineage.verify_lineage(subject)
        except lineage.UnknownArtifact as exc:
            raise NotFound(str(exc)) from exc
        return Response(report.to_dict())

    @extend_schema(parameters=[SubjectSerializer], responses={200: ProvDocumentSerializer, 404: UNKNOWN_ARTIFACT})
    @action(detail=False, methods=["get"], renderer_classes=[JSONRenderer])
    def prov(self, request):
        """The lineage as W3C PROV-JSON; ledger/verify_prov.py checks it with web3.py alone. Always
        JSON, whatever the Accept header: a browser's link saves the document, not an HTML page."""
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
        rules.check_view_events(self.request.user)
        return Anchor.objects.select_related("registry").order_by("-first_seq")

    @extend_schema(responses={200: LedgerStatusSerializer})
    @action(detail=False, methods=["get"], url_path="status")
    def lag(self, request):
        """Head of the log, last anchored seq, the lag in events and seconds, and the last error."""
        rules.check_view_events(request.user)
        return Response(anchoring.ledger_status().to_dict())
