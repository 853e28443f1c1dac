"""URL map: pages, Django admin, the REST API and its OpenAPI schema and docs."""
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from access.api import (
    ApplicationViewSet,
    DownloadLinkViewSet,
    DownloadView,
    LeakFindingViewSet,
    LicenceViewSet,
)
from accounts.api import MeView, ObtainTokenView, OrganisationViewSet, UserViewSet
from budgets.api import PrivacyBudgetViewSet
from discovery.api import DatasetViewSet, ReleaseFileView
from defense.api import AlertViewSet
from corpora.api import CorpusVersionViewSet
from innovation.api import (
    ChallengeViewSet,
    InvitationViewSet,
    MetricsView,
    ScenarioViewSet,
    ShowcaseViewSet,
    SubmissionViewSet,
    TeamViewSet,
)
from federation.api import DistrictNodeViewSet
from jobs.api import JobViewSet, SandboxPolicyViewSet, SyftDatasetViewSet, TrainedModelViewSet
from kernel.web import not_found
from portal import errors
from progress.api import TaskProgressViewSet
from provenance.api import AnchorViewSet, LineageEventViewSet, LineageViewSet
from releases.api import ReleasePolicyViewSet, ReleaseViewSet

router = DefaultRouter()
router.register("organisations", OrganisationViewSet, basename="organisation")
router.register("users", UserViewSet, basename="user")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("corpus-versions", CorpusVersionViewSet, basename="corpus-version")
router.register("release-policies", ReleasePolicyViewSet, basename="release-policy")
router.register("releases", ReleaseViewSet, basename="release")
router.register("applications", ApplicationViewSet, basename="application")
router.register("licences", LicenceViewSet, basename="licence")
router.register("download-links", DownloadLinkViewSet, basename="download-link")
router.register("leaks", LeakFindingViewSet, basename="leak")
router.register("budgets", PrivacyBudgetViewSet, basename="budget")
router.register("events", LineageEventViewSet, basename="event")
router.register("tasks", TaskProgressViewSet, basename="task")
router.register("lineage", LineageViewSet, basename="lineage")
router.register("anchors", AnchorViewSet, basename="anchor")
router.register("alerts", AlertViewSet, basename="alert")
router.register("jobs", JobViewSet, basename="job")
router.register("sandbox-policies", SandboxPolicyViewSet, basename="sandbox-policy")
router.register("syft-datasets", SyftDatasetViewSet, basename="syft-dataset")
router.register("models", TrainedModelViewSet, basename="model")
router.register("federation/nodes", DistrictNodeViewSet, basename="district-node")
router.register("scenarios", ScenarioViewSet, basename="scenario")
router.register("challenges", ChallengeViewSet, basename="challenge")
router.register("teams", TeamViewSet, basename="team")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("submissions", SubmissionViewSet, basename="submission")
router.register("showcase", ShowcaseViewSet, basename="showcase")

urlpatterns = [
    path("", include("portal.urls")),
    path("favicon.ico", errors.favicon, name="favicon"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("api/me/", MeView.as_view(), name="api-me"),
    path("api/innovation-metrics/", MetricsView.as_view(), name="api-innovation-metrics"),
    path("api/downloads/<str:token>/", DownloadView.as_view(), name="api-download"),
    path("api/releases/<int:pk>/files/<str:fmt>/", ReleaseFileView.as_view(), name="api-release-file"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="portal/swagger_ui.html"),
         name="api-docs"),
    # Namespaced, so API route names never collide with page names.
    path("api/", include((router.urls, "api"))),
    # Any other path under /api/ ending in a slash: a JSON 404, as the schema says (others are
    # left to APPEND_SLASH, which redirects them here).
    re_path(r"^api/.*/$", not_found, name="api-not-found"),
]

# Error pages in the site's layout and language; JSON under /api/ (portal/errors.py).
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
