"""API for node onboarding: a steward registers a district node's public key with the
standing SuperLink, sees every node registered / online / offline with its last contact and
device, and revokes one; a district's data holder sees its own nodes and the partitions on
them, and publishes what a node holds (`python -m sandbox.federated.node publish`)."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Organisation

from . import actions, rules
from .models import DistrictNode
from .queries import described, visible_nodes


class NodeSerializer(serializers.Serializer):
    name = serializers.CharField()
    organisation = serializers.CharField(source="organisation.code")
    status = serializers.CharField()  # registered or revoked, at the platform
    state = serializers.CharField()  # registered (never connected), online, offline, revoked; unknown: no SuperLink
    last_contact = serializers.CharField(allow_null=True)
    device = serializers.CharField()
    flower_node_id = serializers.CharField()
    registered_at = serializers.DateTimeField()
    partitions = serializers.ListField(child=serializers.DictField())


class RegisterSerializer(serializers.Serializer):
    organisation = serializers.SlugRelatedField(slug_field="code", queryset=Organisation.objects.all())
    name = serializers.CharField(max_length=60)
    public_key = serializers.CharField(max_length=2000)


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class PublishSerializer(serializers.Serializer):
    manifest = serializers.JSONField()


NODE_NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, description="the node's name")


class DistrictNodeViewSet(viewsets.ViewSet):
    lookup_field = "name"
    serializer_class = NodeSerializer

    @extend_schema(responses=NodeSerializer(many=True))
    def list(self, request):
        """Every node you may see, with its state at the SuperLink now."""
        return Response(NodeSerializer(described(visible_nodes(request.user)), many=True).data)

    @extend_schema(request=RegisterSerializer, responses=NodeSerializer)
    def create(self, request):
        """Register a district node's public key with the SuperLink (a steward)."""
        rules.check_manage_nodes(request.user)
        body = RegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = actions.register_node(actor=request.user, **body.validated_data)
        return Response(NodeSerializer(described([node])[0]).data, status=201)

    def _node(self, request, name) -> DistrictNode:
        return get_object_or_404(visible_nodes(request.user), name=name)

    @extend_schema(parameters=[NODE_NAME], request=RevokeSerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, name=None):
        """Revoke a node: the SuperLink forgets its key and it can no longer connect."""
        body = RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = actions.revoke_node(actor=request.user, node=self._node(request, name), **body.validated_data)
        return Response(NodeSerializer(described([node])[0]).data)

    @extend_schema(parameters=[NODE_NAME], request=PublishSerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, name=None):
        """What the node holds, for the catalog: its district's data holder sends the manifest."""
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = self._node(request, name)
        actions.publish_partition(actor=request.user, node=node, manifest=body.validated_data["manifest"])
        node.refresh_from_db()
        return Response(NodeSerializer(described([node])[0]).data)
