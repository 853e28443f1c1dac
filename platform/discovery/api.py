"""API for the dataset registry: search, metadata records, DCAT export, registration and
metadata updates."""
from __future__ import annotations

import hashlib
import json

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.throttling import AnonRateThrottle
from rest_framework.response import Response
from rest_framework.views import APIView

from access import downloads, packages
from accounts import permissions
from accounts.models import Organisation
from catalog import actions, rules
from catalog.models import DataClass, Dataset, Theme
from kernel import roles
from kernel.errors import InvalidInput
from releases import rules as releases_rules
from releases.models import Release

from . import answers, dcat, metadata


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


class TurtleRenderer(BaseRenderer):
    """The DCAT documents as RDF Turtle; anything else (an error) stays JSON."""

    media_type = dcat.TURTLE
    format = "ttl"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "@context" in data:
            return dcat.turtle(data).encode()
        renderer_context["response"]["Content-Type"] = "application/json"
        return JSONRenderer().render(data)


DCAT_RENDERERS = [JSONLDRenderer, TurtleRenderer, JSONRenderer]
DCAT_RESPONSES[(200, dcat.TURTLE)] = OpenApiResponse(OpenApiTypes.STR, description="The same graph in Turtle.")
DCAT_PAGE_SIZE, DCAT_MAX_PAGE_SIZE = 50, 100
# Anonymous readers' copies may be kept a minute by caches; logged-in readers' are private.
DCAT_PUBLIC_MAX_AGE = 60


def page_number(params, name: str, default: int, highest: int | None = None) -> int:
    text = params.get(name)
    if text in (None, ""):
        return default
    try:
        number = int(text)
    except ValueError:
        raise InvalidInput(name, _("%(text)r is not a whole number") % {"text": text[:20]}) from None
    if number < 1 or (highest is not None and number > highest):
        raise InvalidInput(name, f"give a number from 1 to {highest}" if highest else "give a number from 1")
    return number


def dcat_etag(request, document: dict) -> str:
    """The ETag of a DCAT document in the negotiated media type."""
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)
    media_type = request.accepted_renderer.media_type
    return '"' + hashlib.sha256(f"{media_type}\n{body}".encode()).hexdigest()[:40] + '"'


def conditional_dcat(request, response: HttpResponse, etag: str) -> HttpResponse:
    """ETag and conditional GET: 304 when the reader already holds this version. Shared
    caches may keep anonymous readers' copies."""
    answer = get_conditional_response(request, etag=etag) or response
    answer["ETag"] = etag
    patch_vary_headers(answer, ["Accept", "Authorization", "Cookie"])
    if roles.role_of(request.user) is None:
        patch_cache_control(answer, public=True, max_age=DCAT_PUBLIC_MAX_AGE)
    else:
        patch_cache_control(answer, private=True, no_cache=True)
    return answer


FILTER_PARAMETERS = [
    OpenApiParameter("q", str, description="text in titles, descriptions and keywords (zh or en)"),
    OpenApiParameter("data_class", str, enum=DataClass.values),
    OpenApiParameter("theme", str, enum=Theme.values),
    OpenApiParameter("district", str, description="part of the district's name or code, e.g. 黄浦"),
    OpenApiParameter("bbox", str, description="lon_min,lat_min,lon_max,lat_max: meets the newest version's extent"),
    OpenApiParameter("cell", str, description="a grid code (G + octal digits) containing or inside a covered cell"),
]


class CatalogPagination(PageNumberPagination):
    """20 records a page (a record is about 1.7 KB of JSON), `page_size` up to 100: the cost of
    a page stays that of a few records however large the catalogue grows."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class OpenCatalogThrottle(AnonRateThrottle):
    """Anonymous DCAT readers, per client address (as the login lockout counts it): a
    harvester reads a page at a time; a page costs the server its datasets' extents."""

    rate = "120/min"
    scope = "open-catalog"

    def get_ident(self, request):
        from accounts.throttling import client_ip

        return client_ip(request) or super().get_ident(request)


class DatasetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The catalogue: every logged-in user searches it and reads each dataset's metadata and
    its DCAT record; stewards register their bureau's datasets and change their metadata."""

    serializer_class = DatasetSerializer
    pagination_class = CatalogPagination
    queryset = Dataset.objects.none()
    lookup_field = "slug"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return rules.catalog_datasets(self.request.user, metadata.catalog_queryset())

    def filtered(self):
        return metadata.find(self.request.user, self.request.query_params)

    def url(self, name: str, arg) -> str:
        return self.request.build_absolute_uri(reverse(name, args=[arg]))

    def download_url(self, release_id: int, fmt: str) -> str | None:
        """The file of an open release in ``fmt``, where that format is served as a file."""
        if fmt not in packages.FORMATS:
            return None
        return self.request.build_absolute_uri(reverse("api-release-file", args=[release_id, fmt]))

    def whole_record(self, dataset: Dataset) -> dict:
        dataset = self.get_queryset().get(pk=dataset.pk)
        return metadata.dataset_record(
            dataset, url=self.url, releases=metadata.release_history(self.request.user, dataset)
        )

    @extend_schema(operation_id="datasets_list", parameters=FILTER_PARAMETERS,
                   responses=DatasetRecordSerializer(many=True))
    def list(self, request, *args, **kwargs):
        """Datasets matching every filter given; a bad filter value is a 400 naming it."""
        def compute():
            page = self.paginate_queryset(self.filtered())
            return self.get_paginated_response([metadata.dataset_record(d, url=self.url) for d in page]).data

        return answers.answer(request, "datasets-list", compute)[0]

    @extend_schema(responses=DatasetRecordSerializer)
    def retrieve(self, request, *args, **kwargs):
        """A dataset's whole metadata: every version (extent, unit kinds, fields with types,
        covered grid cells, update date) and the releases the caller may see."""
        return Response(self.whole_record(self.get_object()))

    @extend_schema(responses={201: DatasetRecordSerializer})
    def create(self, request, *args, **kwargs):
        rules.check_register_dataset(request.user, request.user.organisation)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = actions.register_dataset(actor=request.user, **body.validated_data)
        return Response(self.whole_record(dataset), status=status.HTTP_201_CREATED)

    @extend_schema(responses=DatasetRecordSerializer)
    def partial_update(self, request, *args, **kwargs):
        """Change descriptive metadata (stewards of the owning bureau); slug, class, owner and
        holders stay as registered."""
        dataset = self.get_object()
        rules.check_manage_dataset(request.user, dataset)
        fixed = sorted(set(request.data) - set(actions.METADATA_FIELDS))
        if fixed:
            raise InvalidInput(fixed[0], _("cannot be changed; change one of %(actions_metadata_fields)s")
                                         % {"actions_metadata_fields": ', '.join(actions.METADATA_FIELDS)})
        body = self.get_serializer(dataset, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        dataset = actions.update_dataset_metadata(actor=request.user, dataset=dataset, **body.validated_data)
        return Response(self.whole_record(dataset))

    @extend_schema(operation_id="datasets_dcat_catalog", parameters=[
        *FILTER_PARAMETERS, OpenApiParameter("page", int, description="page number, from 1"),
        OpenApiParameter("page_size", int, description=f"datasets per page, at most {DCAT_MAX_PAGE_SIZE}"),
    ], responses=DCAT_RESPONSES)
    @action(detail=False, methods=["get"], url_path="dcat", url_name="catalog-dcat",
            renderer_classes=DCAT_RENDERERS, permission_classes=[permissions.OpenCatalogReadable],
            throttle_classes=[OpenCatalogThrottle])
    def catalog_dcat(self, request):
        """The catalogue (or the datasets matching the filters) as a DCAT-AP dcat:Catalog, one
        page at a time with Hydra paging links (hydra:view). Anonymous readers get the open
        datasets; JSON-LD, Turtle (text/turtle) or JSON by the Accept header; ETag and
        If-None-Match answer 304 when nothing changed."""
        def compute():
            size = page_number(request.query_params, "page_size", DCAT_PAGE_SIZE, DCAT_MAX_PAGE_SIZE)
            number = page_number(request.query_params, "page", 1)
            matching = self.filtered()
            total = matching.count()
            page = dcat.Page(number, size, total, url=self.page_url)
            if number > page.last:
                raise NotFound(f"page {number} is past the last page, {page.last}")
            datasets = list(matching[(number - 1) * size:number * size])
            releases = metadata.published_releases([d.pk for d in datasets])
            records = [metadata.dataset_record(d, url=self.url, releases=releases.get(d.pk, [])) for d in datasets]
            return dcat.catalog_document(
                records, catalog_url=request.build_absolute_uri(request.path),
                homepage=request.build_absolute_uri(reverse("dashboard")), page=page, download_url=self.download_url,
            )

        return conditional_dcat(request, *answers.answer(request, "dcat-catalog", compute,
                                                          etag=lambda document: dcat_etag(request, document)))

    def page_url(self, number: int) -> str:
        params = self.request.query_params.copy()
        params["page"] = str(number)
        return self.request.build_absolute_uri(f"{self.request.path}?{params.urlencode()}")

    @extend_schema(operation_id="datasets_dcat_dataset", responses=DCAT_RESPONSES)
    @action(detail=True, methods=["get"], url_path="dcat", url_name="dcat",
            renderer_classes=DCAT_RENDERERS, permission_classes=[permissions.OpenCatalogReadable],
            throttle_classes=[OpenCatalogThrottle])
    def dataset_dcat(self, request, slug=None):
        """One dataset as a DCAT-AP dcat:Dataset, with its published releases as
        distributions (anonymous readers: open datasets only)."""
        def compute():
            dataset = self.get_object()
            releases = metadata.published_releases([dataset.pk]).get(dataset.pk, [])
            record = metadata.dataset_record(dataset, url=self.url, releases=releases)
            return dcat.dataset_document(record, download_url=self.download_url)

        return conditional_dcat(request, *answers.answer(request, f"dcat-dataset:{slug}", compute,
                                                          etag=lambda document: dcat_etag(request, document)))


class ReleaseFileView(APIView):
    """The file of a published open release in one format: the dcat:downloadURL of its
    distribution. Any logged-in user (anonymous callers get 401); each GET is recorded as a
    download, as the portal's download button records it. HEAD checks without recording."""

    def release(self, request, pk: int) -> Release:
        return get_object_or_404(
            releases_rules.visible_releases(request.user, Release.objects.select_related("corpus__dataset")), pk=pk
        )

    @extend_schema(operation_id="releases_file", responses={
        (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY, (200, "application/geo+json"): OpenApiTypes.BINARY,
    })
    def get(self, request, pk: int, fmt: str):
        link = downloads.issue_release_link(actor=request.user, release=self.release(request, pk), fmt=fmt)
        return downloads.package_response(downloads.follow_link(actor=request.user, token=link.token))

    def head(self, request, pk: int, fmt: str):
        downloads.issue_release_link(actor=request.user, release=self.release(request, pk), fmt=fmt)
        return HttpResponse(content_type=packages.CONTENT_TYPES[fmt])
