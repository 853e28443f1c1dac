"""API for the dataset registry: search, metadata records, DCAT export, registration and
metadata updates."""
from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts import permissions
from accounts.models import Organisation
from miliao.errors import InvalidInput

from . import actions, dcat, metadata
from .models import DataClass, Dataset, Theme
from .query import parse_filters


class DatasetSerializer(serializers.ModelSerializer):
    """What a steward sends to register a dataset or to change its metadata."""

    owner = serializers.SlugRelatedField(slug_field="code", read_only=True)
    holders = serializers.SlugRelatedField(
        slug_field="code", many=True, queryset=Organisation.objects.all(), required=False
    )
    keywords = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)

    class Meta:
        model = Dataset
        fields = [
            "id", "slug", "title", "title_en", "description", "description_en", "data_class", "theme", "district",
            "keywords", "owner", "holders", "created_at",
        ]
        read_only_fields = ["id", "owner", "created_at"]
        extra_kwargs = {"slug": {"validators": []}}


# --- what the catalogue's answers look like (for the schema) ---------------------------------


class LabelsSerializer(serializers.Serializer):
    zh = serializers.CharField()
    en = serializers.CharField(allow_blank=True, help_text="empty until translated")


class FieldTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()


def extent_field():
    return serializers.ListField(
        child=serializers.FloatField(), allow_null=True,
        help_text="lon_min, lat_min, lon_max, lat_max (WGS 84), out to the grid cells it touches")


class VersionRecordSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    units = serializers.IntegerField()
    kinds = serializers.JSONField(help_text="unit counts by kind")
    extent = extent_field()
    source_crs = serializers.CharField()
    fields = FieldTypeSerializer(many=True)
    cell_level = serializers.IntegerField()
    cell_count = serializers.IntegerField()
    sha256 = serializers.CharField()
    updated_at = serializers.DateTimeField()
    cells = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="covered grid cells (in a dataset's whole record only)")


class OutputDigestSerializer(serializers.Serializer):
    bytes = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)


class ReleaseRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    policy_version = serializers.IntegerField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    formats = serializers.ListField(child=serializers.CharField())
    outputs = serializers.DictField(child=OutputDigestSerializer())
    url = serializers.URLField()


class DatasetRecordSerializer(serializers.Serializer):
    """Everything the catalogue says about a dataset. A list shows the summary (the newest
    version without its cells); one dataset's record also has every version and the releases
    the caller may see."""

    id = serializers.IntegerField()
    slug = serializers.CharField()
    title = serializers.CharField()
    title_en = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)
    description_en = serializers.CharField(allow_blank=True)
    data_class = serializers.ChoiceField(choices=DataClass.choices)
    data_class_label = LabelsSerializer()
    theme = serializers.ChoiceField(choices=Theme.choices)
    theme_label = LabelsSerializer()
    district = serializers.CharField(allow_blank=True)
    keywords = serializers.ListField(child=serializers.CharField(allow_blank=True))
    owner = serializers.CharField()
    owner_name = LabelsSerializer()
    holders = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    extent = extent_field()
    fields = FieldTypeSerializer(many=True)
    latest_version = VersionRecordSerializer(allow_null=True)
    page_url = serializers.URLField()
    versions = VersionRecordSerializer(many=True, required=False)
    releases = ReleaseRecordSerializer(many=True, required=False)


# A DCAT-AP document in JSON-LD (https://www.w3.org/TR/vocab-dcat-3/), whose terms `@context`
# defines. DRF answers JSON-LD, or plain JSON where the client's Accept header asks for it.
JSONLD_DOCUMENT = OpenApiResponse(
    response={
        "type": "object",
        "properties": {
            "@context": {"description": "the JSON-LD context: prefixes and term definitions"},
            "@id": {"type": "string"},
            "@type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        },
        "required": ["@context"],
    },
    description="A DCAT-AP document in JSON-LD.",
)
DCAT_RESPONSES = {(200, dcat.MEDIA_TYPE): JSONLD_DOCUMENT, (200, "application/json"): JSONLD_DOCUMENT}


class JSONLDRenderer(JSONRenderer):
    media_type = dcat.MEDIA_TYPE
    format = "jsonld"


FILTER_PARAMETERS = [
    OpenApiParameter("q", str, description="text in titles, descriptions and keywords (zh or en)"),
    OpenApiParameter("data_class", str, enum=DataClass.values),
    OpenApiParameter("theme", str, enum=Theme.values),
    OpenApiParameter("district", str, description="part of the district's name or code, e.g. 黄浦"),
    OpenApiParameter("bbox", str, description="lon_min,lat_min,lon_max,lat_max: meets the newest version's extent"),
    OpenApiParameter("cell", str, description="a grid code (G + octal digits) containing or inside a covered cell"),
]


class DatasetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The catalogue: every logged-in user searches it and reads each dataset's metadata and
    its DCAT record; stewards register their bureau's datasets and change their metadata."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()
    lookup_field = "slug"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return metadata.catalog_queryset()

    def filtered(self):
        filters = parse_filters(self.request.query_params, data_classes=DataClass.values, themes=Theme.values)
        return metadata.search(self.get_queryset(), filters)

    def url(self, name: str, arg) -> str:
        return self.request.build_absolute_uri(reverse(name, args=[arg]))

    def whole_record(self, dataset: Dataset) -> dict:
        dataset = self.get_queryset().get(pk=dataset.pk)
        return metadata.dataset_record(
            dataset, url=self.url, releases=metadata.release_history(self.request.user, dataset)
        )

    @extend_schema(operation_id="datasets_list", parameters=FILTER_PARAMETERS,
                   responses=DatasetRecordSerializer(many=True))
    def list(self, request, *args, **kwargs):
        """Datasets matching every filter given; a bad filter value is a 400 naming it."""
        page = self.paginate_queryset(self.filtered())
        return self.get_paginated_response([metadata.dataset_record(d, url=self.url) for d in page])

    @extend_schema(responses=DatasetRecordSerializer)
    def retrieve(self, request, *args, **kwargs):
        """A dataset's whole metadata: every version (extent, unit kinds, fields with types,
        covered grid cells, update date) and the releases the caller may see."""
        return Response(self.whole_record(self.get_object()))

    @extend_schema(responses={201: DatasetRecordSerializer})
    def create(self, request, *args, **kwargs):
        permissions.check_register_dataset(request.user, request.user.organisation)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = actions.register_dataset(actor=request.user, **body.validated_data)
        return Response(self.whole_record(dataset), status=status.HTTP_201_CREATED)

    @extend_schema(responses=DatasetRecordSerializer)
    def partial_update(self, request, *args, **kwargs):
        """Change descriptive metadata (stewards of the owning bureau); slug, class, owner and
        holders stay as registered."""
        dataset = self.get_object()
        permissions.check_manage_dataset(request.user, dataset)
        fixed = sorted(set(request.data) - set(actions.METADATA_FIELDS))
        if fixed:
            raise InvalidInput(fixed[0], f"cannot be changed; change one of {', '.join(actions.METADATA_FIELDS)}")
        body = self.get_serializer(dataset, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        dataset = actions.update_dataset_metadata(actor=request.user, dataset=dataset, **body.validated_data)
        return Response(self.whole_record(dataset))

    @extend_schema(operation_id="datasets_dcat_catalog", parameters=FILTER_PARAMETERS,
                   responses=DCAT_RESPONSES)
    @action(detail=False, methods=["get"], url_path="dcat", url_name="catalog-dcat",
            renderer_classes=[JSONLDRenderer, JSONRenderer])
    def catalog_dcat(self, request):
        """The whole catalogue (or the datasets matching the filters) as a DCAT dcat:Catalog."""
        datasets = list(self.filtered())
        releases = metadata.published_releases([d.pk for d in datasets])
        records = [metadata.dataset_record(d, url=self.url, releases=releases.get(d.pk, [])) for d in datasets]
        return Response(dcat.catalog_document(
            records, catalog_url=request.build_absolute_uri(request.path),
            homepage=request.build_absolute_uri(reverse("dashboard")),
        ))

    @extend_schema(operation_id="datasets_dcat_dataset", responses=DCAT_RESPONSES)
    @action(detail=True, methods=["get"], url_path="dcat", url_name="dcat",
            renderer_classes=[JSONLDRenderer, JSONRenderer])
    def dataset_dcat(self, request, slug=None):
        """One dataset as a DCAT dcat:Dataset, with its published releases as distributions."""
        dataset = self.get_object()
        releases = metadata.published_releases([dataset.pk]).get(dataset.pk, [])
        return Response(dcat.dataset_document(metadata.dataset_record(dataset, url=self.url, releases=releases)))
