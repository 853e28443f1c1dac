"""API for applications, licences, download links and downloads, and leak tracing."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Dataset
from kernel.errors import InvalidInput
from releases import rules as releases_rules
from releases.models import Release

from . import actions, downloads, links, packages, rules
from .models import Application, LeakFinding, Licence, PurposeCategory
from .packages import FORMATS

# --- applications --------------------------------------------------------------------------

REQUEST_FIELDS = ["release", "purpose_category", "purpose", "fields", "area", "duration_days", "people"]


class ApplicationSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    release = serializers.PrimaryKeyRelatedField(
        queryset=Release.objects.all(), required=False, allow_null=True
    )
    purpose_category = serializers.ChoiceField(choices=PurposeCategory.choices, required=False)
    fields = serializers.ListField(child=serializers.CharField(), required=False)
    area = serializers.JSONField(required=False, allow_null=True)
    duration_days = serializers.IntegerField(required=False)
    people = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.all(), many=True, required=False
    )
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    applicant = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    licence = serializers.SerializerMethodField()

    class Meta:
        model = Application
        fields = [
            "id",
            "dataset",
            "release",
            "organisation",
            "applicant",
            "purpose_category",
            "purpose",
            "fields",
            "area",
            "duration_days",
            "people",
            "status",
            "reviewer",
            "decision_reason",
            "submitted_at",
            "decided_at",
            "licence",
        ]
        read_only_fields = [
            "id",
            "organisation",
            "applicant",
            "status",
            "reviewer",
            "decision_reason",
            "submitted_at",
            "decided_at",
        ]

    def get_licence(self, application) -> int | None:
        licence = getattr(application, "licence", None)
        return licence.pk if licence is not None else None


class ApplicationChangeSerializer(serializers.Serializer):
    """A resubmission: any of the request's fields; those left out stay as they were."""

    release = serializers.PrimaryKeyRelatedField(
        queryset=Release.objects.all(), required=False, allow_null=True
    )
    purpose_category = serializers.ChoiceField(choices=PurposeCategory.choices, required=False)
    purpose = serializers.CharField(required=False, allow_blank=True)
    fields = serializers.ListField(child=serializers.CharField(), required=False)
    area = serializers.JSONField(required=False, allow_null=True)
    duration_days = serializers.IntegerField(required=False)
    people = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.all(), many=True, required=False
    )


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ApprovalSerializer(DecisionSerializer):
    # Decimal strings (or numbers), checked exactly by the budget: "0.5", not a float's 0.5000000001.
    epsilon = serializers.CharField(
        required=False, help_text='compute-only: the privacy budget\'s ε, e.g. "1.0" (default)'
    )
    delta = serializers.CharField(
        required=False, help_text='compute-only: the budget\'s δ, e.g. "1e-6" (default)'
    )
    download_limit = serializers.IntegerField(
        required=False, help_text="conditional: downloads allowed (default 10)"
    )


class ApplicationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Applications. Applicants see their organisation's; stewards also those for their datasets."""

    serializer_class = ApplicationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Application.objects.none()
        return rules.visible_applications(
            self.request.user,
            Application.objects.select_related(
                "dataset__owner", "organisation", "applicant", "reviewer", "licence"
            ).prefetch_related("people"),
        )

    def create(self, request, *args, **kwargs):
        rules.check_submit_application(request.user, None)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.submit_application(
            actor=self.request.user,
            dataset=data["dataset"],
            **{name: data[name] for name in REQUEST_FIELDS if name in data},
        )

    def _answer(self, application):
        return Response(ApplicationSerializer(Application.objects.get(pk=application.pk)).data)

    def _decide(self, request, decide, body_class=DecisionSerializer):
        application = self.get_object()
        body = body_class(data=request.data)
        body.is_valid(raise_exception=True)
        return self._answer(decide(actor=request.user, application=application, **body.validated_data))

    @extend_schema(request=ApprovalSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve (stewards of the owning bureau, never for their own organisation).
        Conditional data: grants a licence. Compute-only: grants the right to run jobs and a
        privacy budget (ε, δ)."""
        return self._decide(request, actions.approve_application, ApprovalSerializer)

    @extend_schema(request=DecisionSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject with a reason (stewards of the owning bureau)."""
        return self._decide(request, actions.reject_application)

    @extend_schema(request=DecisionSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request, pk=None):
        """Send it back to the applicant saying what to change (stewards of the owning bureau)."""
        return self._decide(request, actions.request_changes)

    @extend_schema(request=ApplicationChangeSerializer, responses=ApplicationSerializer)
    @action(detail=True, methods=["post"])
    def resubmit(self, request, pk=None):
        """Answer a request for changes (the applicant's organisation); fields left out stay."""
        application = self.get_object()
        body = ApplicationChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._answer(
            actions.resubmit_application(actor=request.user, application=application, **body.validated_data)
        )


# --- licences and downloads ------------------------------------------------------------------


class LicenceSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(source="release.corpus.dataset", slug_field="slug", read_only=True)
    organisation = serializers.SlugRelatedField(slug_field="code", read_only=True)
    users = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    expired = serializers.BooleanField(read_only=True)

    class Meta:
        model = Licence
        fields = [
            "id",
            "application",
            "release",
            "dataset",
            "organisation",
            "users",
            "status",
            "status_reason",
            "valid_from",
            "valid_until",
            "expired",
            "download_limit",
            "downloads_used",
            "policy",
            "created_at",
            "status_changed_at",
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class LinkRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, default="geojson")
    purpose = serializers.ChoiceField(
        choices=PurposeCategory.choices,
        required=False,  # no default: "" is not one of the choices (the schema said it was)
        help_text="the purpose of this download; by default the one the licence was granted for",
    )


class LinkSerializer(serializers.Serializer):
    url = serializers.CharField()
    token = serializers.CharField()
    format = serializers.CharField()
    expires_at = serializers.DateTimeField()


def _link_answer(link: links.Link) -> Response:
    return Response(
        LinkSerializer(
            {
                "url": link.url,
                "token": link.token,
                "format": link.claims.format,
                "expires_at": link.expires_at,
            }
        ).data,
        status=status.HTTP_201_CREATED,
    )


class LicenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Licences, each with its ODRL policy. Visible to the licensed organisation, stewards of
    the owning bureau, auditors and admins."""

    serializer_class = LicenceSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Licence.objects.none()
        return rules.visible_licences(
            self.request.user,
            Licence.objects.select_related(
                "release__corpus__dataset__owner", "organisation", "application"
            ).prefetch_related("users"),
        )

    def _change(self, request, change):
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        licence = change(actor=request.user, licence=self.get_object(), reason=body.validated_data["reason"])
        return Response(LicenceSerializer(self.get_queryset().get(pk=licence.pk)).data)

    @extend_schema(request=ReasonSerializer, responses=LicenceSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """Stop downloads until reinstated (stewards of the owning bureau, with a reason)."""
        return self._change(request, actions.suspend_licence)

    @extend_schema(request=ReasonSerializer, responses=LicenceSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """End the licence for good (stewards of the owning bureau, with a reason)."""
        return self._change(request, actions.revoke_licence)

    @extend_schema(request=ReasonSerializer, responses=LicenceSerializer)
    @action(detail=True, methods=["post"])
    def reinstate(self, request, pk=None):
        """Lift a suspension (stewards of the owning bureau)."""
        return self._change(request, actions.reinstate_licence)

    @extend_schema(request=LinkRequestSerializer, responses={201: LinkSerializer})
    @action(detail=True, methods=["post"])
    def links(self, request, pk=None):
        """A signed link, valid for minutes and one download, to the caller's own fingerprinted
        package (people named on the licence)."""
        body = LinkRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        link = downloads.issue_licence_link(
            actor=request.user,
            licence=self.get_object(),
            fmt=body.validated_data["format"],
            purpose=body.validated_data.get("purpose", ""),
        )
        return _link_answer(link)


class ReleaseLinkRequestSerializer(serializers.Serializer):
    release = serializers.IntegerField()
    format = serializers.ChoiceField(choices=FORMATS, default="geojson")


class DownloadLinkViewSet(viewsets.GenericViewSet):
    """Links to open releases, which any logged-in user downloads without applying."""

    serializer_class = ReleaseLinkRequestSerializer
    auditors_may_post = True  # reading open data changes nothing but the download log

    @extend_schema(request=ReleaseLinkRequestSerializer, responses={201: LinkSerializer})
    def create(self, request):
        body = ReleaseLinkRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        release_id = body.validated_data["release"]
        release = (
            releases_rules.visible_releases(request.user, Release.objects.select_related("corpus__dataset"))
            .filter(pk=release_id)
            .first()
        )
        if release is None:
            raise InvalidInput("release", _("there is no published release #%(release_id)s")
                                          % {"release_id": release_id})
        return _link_answer(
            downloads.issue_release_link(
                actor=request.user, release=release, fmt=body.validated_data["format"]
            )
        )


class DownloadView(APIView):
    """Follow a download link: the package, built for the caller and streamed. Refused when
    the link is altered (400), expired or used (410), someone else's (403), or the licence
    no longer allows it (403, with the reason)."""

    @extend_schema(responses={
        **{(200, media_type): OpenApiTypes.BINARY for media_type in packages.CONTENT_TYPES.values()},
        400: OpenApiResponse(description="The link was altered."),
        410: OpenApiResponse(description="The link has expired, or was used."),
    })
    def get(self, request, token: str):
        return downloads.package_response(downloads.follow_link(actor=request.user, token=token))


# --- leak tracing --------------------------------------------------------------------------


class LeakFindingSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    recipient = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    recipient_users = serializers.SerializerMethodField()

    class Meta:
        model = LeakFinding
        fields = [
            "id",
            "uploaded_by",
            "file_name",
            "file_sha256",
            "leaked_units",
            "release",
            "licence",
            "recipient",
            "recipient_users",
            "p_value",
            "matched_units",
            "detail",
            "created_at",
        ]
        read_only_fields = fields

    def get_recipient_users(self, finding) -> list[str]:
        if finding.licence is None:
            return []
        return sorted(u.username for u in finding.licence.users.all())


class LeakUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    declared_crs = serializers.CharField(required=False, allow_blank=True, default="")


class LeakFindingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Leak tracing: an auditor uploads a leaked file (GeoJSON, GeoPackage, GeoParquet, or a
    zip of one) and the platform names the licence and recipient it came from, if any."""

    serializer_class = LeakFindingSerializer
    parser_classes = [MultiPartParser, FormParser]
    auditors_may_post = True  # tracing is the auditor's own work

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LeakFinding.objects.none()
        rules.check_view_leak_findings(self.request.user)
        return rules.visible_leak_findings(
            self.request.user,
            LeakFinding.objects.select_related("uploaded_by", "recipient", "licence").prefetch_related(
                "licence__users"
            ),
        )

    @extend_schema(
        request={"multipart/form-data": LeakUploadSerializer}, responses={201: LeakFindingSerializer}
    )
    def create(self, request, *args, **kwargs):
        rules.check_trace_leak(request.user)
        body = LeakUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding = actions.trace_leak(
            actor=request.user,
            upload=body.validated_data["file"],
            declared_crs=body.validated_data["declared_crs"],
        )
        return Response(LeakFindingSerializer(finding).data, status=status.HTTP_201_CREATED)
