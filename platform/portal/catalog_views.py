"""The catalogue page: search and filters over the datasets a reader may see, with the API's
own filter code (discovery.metadata.find), paged. Anonymous visitors browse the open data, as
on an open-data portal; everything else needs a login."""
from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse

from access import rules as access_rules
from discovery import metadata
from catalog.models import DataClass, Theme
from innovation import rules as innovation_rules
from jobs import rules as jobs_rules
from kernel import roles
from kernel.errors import InvalidInput

from .views import _page

# The map extent's four inputs, in the API's bbox order.
EXTENT_INPUTS = ("west", "south", "east", "north")
FILTERS = ("q", "data_class", "theme", "district")


def catalog_params(query) -> dict[str, str]:
    """The API's filter parameters from the page's inputs: the four extent inputs become its
    bbox (a part-filled box is the API's own bbox error)."""
    params = {name: query.get(name, "") for name in FILTERS}
    corners = [query.get(name, "").strip() for name in EXTENT_INPUTS]
    params["bbox"] = ",".join(corners) if any(corners) else query.get("bbox", "")
    return params


def catalog(request):
    params = catalog_params(request.GET)
    errors, status = {}, 200
    try:
        found = metadata.find(request.user, params)
        page = _page(request, found, "page", per_page=20)
    except InvalidInput as exc:
        errors[exc.field] = exc.field_message
        page, status = None, 400

    def url(name, arg):
        return reverse(name, args=[arg])

    rows = [(d, metadata.dataset_record(d, url=url)) for d in page] if page is not None else []
    values = {name: request.GET.get(name, "") for name in (*FILTERS, *EXTENT_INPUTS)}
    return render(request, "portal/catalog.html", {
        "page": page, "rows": rows, "values": values, "errors": errors,
        "data_classes": DataClass.choices if request.user.is_authenticated else [(DataClass.OPEN, DataClass.OPEN.label)],
        "themes": Theme.choices, "extent_inputs": EXTENT_INPUTS,
        "filtered": any(values.values()),
    }, status=status)


def dataset_actions(user, dataset, record: dict) -> dict:
    """What the viewer of a dataset page may do with it, each asked of the apps' rules
    (the endpoints ask again): download an open release or under their licence, apply, submit
    a job, or join a challenge that trains on it. Anonymous visitors are asked to log in."""
    from access.licensing import latest_published
    from access.models import Application, ApplicationStatus, Licence, LicenceStatus
    from access.packages import FORMATS
    from innovation.models import Challenge, Phase

    if roles.role_of(user) is None:
        return {"login": True}
    offered: dict = {}
    release = latest_published(dataset) if dataset.data_class == DataClass.OPEN else None
    if release is not None and roles.allowed(access_rules.check_download_release, user, release):
        offered["download"] = {"release": release, "formats": [f for f in FORMATS if f in release.outputs]}
    licence = (Licence.objects.filter(release__corpus__dataset=dataset, organisation_id=user.organisation_id,
                                      status=LicenceStatus.ACTIVE).order_by("-pk").first()
               if user.organisation_id else None)
    if licence is not None and roles.allowed(access_rules.check_download_licence, user, licence):
        offered["licence"] = {"licence": licence, "formats": list(FORMATS)}
    applications = Application.objects.filter(dataset=dataset, organisation_id=user.organisation_id)
    approval = applications.filter(status=ApplicationStatus.APPROVED).order_by("-decided_at").first()
    if roles.allowed(jobs_rules.check_submit_job, user, dataset, approval):
        offered["job"] = True
    pending = applications.filter(
        status__in=[ApplicationStatus.SUBMITTED, ApplicationStatus.CHANGES_REQUESTED]).order_by("-pk").first()
    if pending is not None and roles.has_role(user, "applicant"):
        offered["pending"] = pending
    elif (dataset.data_class != DataClass.OPEN and "licence" not in offered and "job" not in offered
          and roles.allowed(access_rules.check_submit_application, user, dataset)):
        offered["apply"] = True
    challenges = [c for c in Challenge.objects.filter(training_dataset=dataset).select_related("scenario")
                  if c.phase() in (Phase.UPCOMING, Phase.OPEN) and roles.allowed(innovation_rules.check_join_challenge, user, c)]
    if challenges:
        offered["challenges"] = challenges
    return offered
