"""API for task progress."""
from __future__ import annotations

from rest_framework import mixins, serializers, viewsets

from kernel.logs import clean_log

from . import rules
from .models import TaskProgress


class TaskProgressSerializer(serializers.ModelSerializer):
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    label = serializers.CharField(source="label_text", read_only=True)  # in the request's language
    stage = serializers.CharField(source="stage_text", read_only=True)
    error = serializers.SerializerMethodField(help_text="why it failed, without server paths or terminal codes")

    def get_error(self, task) -> str:
        return clean_log(task.error)

    class Meta:
        model = TaskProgress
        fields = [
            "id", "kind", "label", "status", "status_display", "percent", "stage", "error", "result", "attempts",
            "started_by", "created_at", "started_at", "finished_at", "updated_at",
        ]
        read_only_fields = fields


class TaskProgressViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Long-running work with its progress: your organisation's, or everyone's for auditors."""

    serializer_class = TaskProgressSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return TaskProgress.objects.none()
        return rules.visible_tasks(
            self.request.user, TaskProgress.objects.select_related("started_by")
        )
