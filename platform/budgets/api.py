"""API for privacy budgets: read them with their entries; stewards refund a spend."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from django.utils.translation import gettext as _

from kernel.errors import InvalidInput

from . import actions, rules
from .models import BudgetEntry, PrivacyBudget


class BudgetEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = BudgetEntry
        fields = ["id", "kind", "epsilon", "job", "reason", "actor", "refund_of", "event_seq", "created_at"]
        read_only_fields = fields


class PrivacyBudgetSerializer(serializers.ModelSerializer):
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    epsilon_remaining = serializers.DecimalField(max_digits=12, decimal_places=6, read_only=True)

    class Meta:
        model = PrivacyBudget
        fields = [
            "id", "organisation", "dataset", "epsilon_total", "epsilon_spent", "epsilon_remaining", "delta",
            "created_at", "updated_at",
        ]
        read_only_fields = fields


class PrivacyBudgetDetailSerializer(PrivacyBudgetSerializer):
    entries = BudgetEntrySerializer(many=True, read_only=True)

    class Meta(PrivacyBudgetSerializer.Meta):
        fields = [*PrivacyBudgetSerializer.Meta.fields, "entries"]
        read_only_fields = fields


class RefundSerializer(serializers.Serializer):
    entry = serializers.IntegerField(help_text="id of the spend to refund, one of this budget's entries")
    epsilon = serializers.CharField(help_text='ε to give back, as a decimal string such as "0.25"')
    reason = serializers.CharField(allow_blank=True, default="")


@extend_schema_view(
    list=extend_schema(parameters=[
        OpenApiParameter("dataset", str, description="a dataset slug"),
        OpenApiParameter("organisation", str, description="an organisation code"),
    ])
)
class PrivacyBudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Privacy budgets: the budget's organisation, stewards of the dataset's bureau, auditors
    and admins read them; a steward of the dataset's bureau refunds a spend."""

    def get_serializer_class(self):
        return PrivacyBudgetSerializer if self.action == "list" else PrivacyBudgetDetailSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return PrivacyBudget.objects.none()
        qs = rules.visible_budgets(
            self.request.user, PrivacyBudget.objects.select_related("organisation", "dataset")
        )
        params = self.request.query_params
        if params.get("dataset"):
            qs = qs.filter(dataset__slug=params["dataset"])
        if params.get("organisation"):
            qs = qs.filter(organisation__code=params["organisation"])
        if self.action != "list":
            qs = qs.prefetch_related("entries__actor")
        return qs

    @extend_schema(request=RefundSerializer, responses={201: BudgetEntrySerializer})
    @action(detail=True, methods=["post"])
    def refund(self, request, pk=None):
        """Refund part or all of one spend (stewards of the dataset's bureau)."""
        budget = self.get_object()
        rules.check_adjust_budget(request.user, budget)
        body = RefundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = budget.entries.filter(pk=body.validated_data["entry"]).first()
        if entry is None:
            raise InvalidInput("entry", _("budget #%(budget)s has no entry #%(entry)s")
                                        % {"budget": budget.pk, "entry": body.validated_data['entry']})
        refund = actions.refund(
            actor=request.user, entry=entry, epsilon=body.validated_data["epsilon"],
            reason=body.validated_data["reason"],
        )
        return Response(BudgetEntrySerializer(refund).data, status=status.HTTP_201_CREATED)
