"""Dataset pages: the catalogue entry with its sample for everyone; for stewards, a dataset's
corpus versions, release policy form with preview, release builds with progress, the release
report with a map, and publication."""
from __future__ import annotations

import json

import shapely
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import permissions
from catalog import metadata
from catalog.models import Dataset
from corpora import actions as corpus_actions
from corpora.mock import mock_seed, mock_units
from corpora.schema import UNIT_KINDS
from miliao.errors import ActionError, Refused
from releases import actions as release_actions
from releases import previews
from releases.actions import release_dir
from releases.location import location_policy
from releases.models import Release, ReleaseStatus
from releases.pipeline import ReleaseSpec

from . import map_views


def _steward_dataset(request, slug: str) -> Dataset:
    dataset = get_object_or_404(Dataset.objects.select_related("owner"), slug=slug)
    try:
        permissions.check_manage_dataset(request.user, dataset)
    except Refused as exc:
        raise PermissionDenied(exc.message) from exc
    return dataset


def policy_form_values(spec: ReleaseSpec) -> dict:
    """The fields of the policy form, read from a spec."""
    return {
        "k": spec.desensitize.k,
        "l": spec.desensitize.l,
        "location": spec.desensitize.location,
        "coarsest_level": spec.desensitize.cell_levels[0],
        "finest_level": spec.desensitize.cell_levels[1],
        "remove_categories": ", ".join(spec.declassify.remove_categories),
        "zone_buffer_m": spec.declassify.zone_buffer_m,
        "height_step_m": spec.declassify.height_step_m,
        "depth_step_m": spec.declassify.depth_step_m,
        "shift_mode": spec.shift.get("mode"),
        "max_offset_m": spec.shift.get("max_offset_m", 100.0),
        "wavelength_m": spec.shift.get("wavelength_m", 4000.0),
        "cell_m": spec.shift.get("cell_m", 500.0),
        "simplify_tolerance_m": spec.lightweight.simplify_tolerance_m,
        "precision_m": spec.lightweight.precision_m,
        "level_of_detail": spec.lightweight.level_of_detail,
        "outputs": list(spec.outputs),
    }


def spec_from_form(base: dict, form) -> dict:
    """A spec dict: the base spec with the form's fields written over it."""
    spec = json.loads(json.dumps(base))
    spec["desensitize"]["k"] = _int(form, "k")
    spec["desensitize"]["l"] = _int(form, "l")
    if "location" in form:  # the join keys follow the choice (a cell release drops building_id)
        spec["desensitize"] = location_policy(spec["desensitize"], form.get("location", ""))
    if "coarsest_level" in form:
        spec["desensitize"]["cell_levels"] = [_int(form, "coarsest_level"), _int(form, "finest_level")]
    spec["declassify"]["remove_categories"] = [c.strip() for c in form.get("remove_categories", "").split(",") if c.strip()]
    for name in ("zone_buffer_m", "height_step_m", "depth_step_m"):
        spec["declassify"][name] = _float(form, name)
    mode = form.get("shift_mode", "")
    spec["shift"] = {"mode": mode}
    if mode == "smooth":
        spec["shift"].update(max_offset_m=_float(form, "max_offset_m"), wavelength_m=_float(form, "wavelength_m"))
    elif mode == "cell":
        spec["shift"].update(max_offset_m=_float(form, "max_offset_m"), cell_m=_float(form, "cell_m"))
    for name in ("simplify_tolerance_m", "precision_m"):
        spec["lightweight"][name] = _float(form, name)
    spec["lightweight"]["level_of_detail"] = form.get("level_of_detail", "room")
    spec["declassify"]["precision_m"] = spec["lightweight"]["precision_m"] or spec["declassify"]["precision_m"]
    spec["outputs"] = form.getlist("outputs")
    return spec


class _FormError(ActionError):
    pass


def _int(form, name):
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise _FormError(f"{name}: enter a whole number") from None


def _float(form, name):
    try:
        return float(form.get(name, ""))
    except ValueError:
        raise _FormError(f"{name}: enter a number") from None


def _form_spec(request, spec: dict) -> ReleaseSpec:
    """The saved spec for the form; a policy saved before location was a quasi-identifier
    (exact rooms beside their rent) no longer passes, and the form shows it adapted to its
    location, saying why, for the steward to save as a new version."""
    try:
        return ReleaseSpec.from_dict(spec)
    except ValueError as exc:
        adapted = json.loads(json.dumps(spec))
        desensitize = adapted.get("desensitize", {})
        adapted["desensitize"] = location_policy(desensitize, desensitize.get("location", "cell"))
        messages.warning(request, _("保存的发布规则不再通过校验（%(error)s）；表单已按位置表达调整，保存后成为新版本。")
                         % {"error": exc})
        return ReleaseSpec.from_dict(adapted)


def _current_spec(dataset: Dataset) -> tuple[dict, object]:
    policy = dataset.policies.order_by("-version").first()
    if policy is not None:
        return policy.spec, policy
    return ReleaseSpec(data_class=dataset.data_class).to_dict(), None


SAMPLE_ROWS = 8


@login_required
def dataset_page(request, slug: str):
    """The catalogue page of a dataset for every logged-in user: its metadata, release
    history and a sample; stewards of the owning bureau also manage versions, policy and
    releases here."""
    try:
        permissions.check_read_catalog(request.user)
    except Refused as exc:
        raise PermissionDenied(exc.message) from exc
    dataset = get_object_or_404(metadata.catalog_queryset(), slug=slug)
    may_manage = permissions.allowed(permissions.check_manage_dataset, request.user, dataset)
    if request.method == "POST" and not may_manage:
        _steward_dataset(request, slug)  # refuses with the rule's reason
    record = metadata.dataset_record(
        dataset, url=lambda name, arg: request.build_absolute_uri(reverse(name, args=[arg])),
        releases=metadata.release_history(request.user, dataset),
    )
    context = {"dataset": dataset, "record": record, "sample": dataset_sample(dataset, record),
               "may_manage": may_manage}
    if may_manage:
        spec, policy = _current_spec(dataset)
        context.update({
            "versions": dataset.versions.order_by("-version"),
            "policy": policy,
            "spec_json": json.dumps(spec, ensure_ascii=False, indent=2),
            "form": policy_form_values(_form_spec(request, spec)),
            "releases": Release.objects.filter(corpus__dataset=dataset)
            .select_related("corpus", "policy", "task")[:20],
            "shift_modes": ["smooth", "cell", "gcj02"],  # 'none' is a sandbox input, never a release
            "levels": ["room", "floor", "building", "grid"],
            "locations": [("cell", _("按格网单元（逐间属性）")), ("aggregate", _("按楼层或楼栋汇总（精确轮廓）")),
                          ("exact", _("精确几何（仅限无敏感属性）"))],
            "formats": ["geoparquet", "geopackage", "geojson"],
        })
        if request.method == "POST":
            context.update(_policy_post(request, dataset, spec))
            if context.pop("saved", False):
                return redirect("dataset-page", slug=slug)
    return render(request, "portal/dataset.html", context)


def dataset_sample(dataset: Dataset, record: dict) -> dict:
    """Real rows of a published open release with its map; otherwise the schema's synthetic
    mock rows (conditional rows need a licence; compute-only rows never leave). The mock
    path never opens the dataset's files."""
    release = None
    if permissions.shows_real_rows(dataset):
        release = Release.objects.filter(
            corpus__dataset=dataset, status=ReleaseStatus.PUBLISHED, outputs__has_key="geoparquet"
        ).order_by("-published_at", "-pk").first()
    if release is not None:
        path = release_dir(release) / release.outputs["geoparquet"]["path"]
        table = previews.release_sample(path, rows=SAMPLE_ROWS)
        if table is not None:
            columns, rows = table_rows(table)
            return {"real": True, "release": release, "columns": columns, "rows": rows,
                    "map_src": reverse("release-map", args=[release.pk])}
    latest = record["latest_version"]
    kinds = [k for k in UNIT_KINDS if k in latest["kinds"]] if latest else None
    table = mock_units(seed=mock_seed(dataset.slug), rows=SAMPLE_ROWS, kinds=kinds or None)
    names = {f["name"] for f in record["fields"]}
    columns, rows = table_rows(table.select([c for c in table.column_names if c in names]))
    sample = {"real": False, "columns": columns, "rows": rows}
    if dataset.data_class == "conditional" and latest and latest.get("cells"):
        # Where the data lies, to the grid cell (~0.8 km): the extent, never a unit.
        sample["map_src"] = reverse("dataset-map", args=[dataset.slug])
    return sample


def table_rows(table) -> tuple[list[str], list[list[str]]]:
    """A few rows as text for a page: attribute columns as they are and, for the geometry,
    only its type (never its coordinates)."""
    columns, values = [], []
    for name in table.column_names:
        column = table.column(name)
        if name == "geometry":
            types = shapely.get_type_id(shapely.from_wkb(column.to_numpy(zero_copy_only=False)))
            values.append([_GEOMETRY_TYPES.get(int(t), "") for t in types])
        else:
            values.append([_text(v) for v in column.to_pylist()])
        columns.append(name)
    return columns, [list(row) for row in zip(*values)]


_GEOMETRY_TYPES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString", 6: "MultiPolygon"}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _policy_post(request, dataset, spec) -> dict:
    try:
        new_spec = spec_from_form(spec, request.POST)
        if request.POST.get("do") == "preview":
            version = dataset.versions.order_by("-version").first()
            if version is None:
                raise _FormError(_("先导入一个数据版本，才能预览。"))
            parsed = release_actions.parse_spec(new_spec)
            report, features = previews.preview(version, parsed)
            return {"preview": report, "preview_map": features, "form": policy_form_values(parsed),
                    "choices": previews.location_choices(version, parsed)}
        release_actions.save_policy(actor=request.user, dataset=dataset, spec=new_spec)
        messages.success(request, _("发布规则已保存为新版本。"))
        return {"saved": True}
    except ActionError as exc:
        messages.error(request, exc.message)
        return {}


@login_required
@require_POST
def ingest(request, slug: str):
    dataset = _steward_dataset(request, slug)
    try:
        if request.FILES.get("file"):
            task = corpus_actions.start_upload_ingest(
                actor=request.user, dataset=dataset, upload=request.FILES["file"],
                declared_crs=request.POST.get("declared_crs", ""),
            )
        else:
            task = corpus_actions.start_generated_ingest(
                actor=request.user, dataset=dataset, seed=_int(request.POST, "seed"), rooms=_int(request.POST, "rooms")
            )
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("dataset-page", slug=slug)
    return redirect("task-page", pk=task.pk)


@login_required
@require_POST
def start_release(request, slug: str):
    dataset = _steward_dataset(request, slug)
    version = dataset.versions.order_by("-version").first()
    policy = dataset.policies.order_by("-version").first()
    if version is None or policy is None:
        messages.error(request, _("需要一个数据版本和一个已保存的发布规则。"))
        return redirect("dataset-page", slug=slug)
    try:
        release = release_actions.start_release(actor=request.user, corpus=version, policy=policy)
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("dataset-page", slug=slug)
    return redirect("release-page", pk=release.pk)


def _visible_release(request, pk: int) -> Release:
    qs = permissions.visible_releases(request.user, Release.objects.select_related("corpus__dataset", "policy", "task"))
    return get_object_or_404(qs, pk=pk)


@login_required
def release_page(request, pk: int):
    release = _visible_release(request, pk)
    shows, _licence = map_views.map_shows(request.user, release)
    may_publish = permissions.allowed(permissions.check_manage_dataset, request.user, release.corpus.dataset)
    return render(request, "portal/release.html", {
        "release": release, "report": release.report, "map_shows": shows, "may_publish": may_publish,
        "may_trace": permissions.allowed(permissions.check_view_events, request.user),
        "report_json": json.dumps(release.report, ensure_ascii=False, indent=2) if release.report else "",
    })


@login_required
@require_POST
def publish(request, pk: int):
    release = _visible_release(request, pk)
    try:
        release_actions.publish_release(actor=request.user, release=release)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("已发布。"))
    return redirect("release-page", pk=pk)


@login_required
def release_file(request, pk: int, fmt: str):
    """The steward's own copy of an output; recipients' downloads are licensed separately."""
    release = _visible_release(request, pk)
    try:
        permissions.check_manage_dataset(request.user, release.corpus.dataset)
    except Refused as exc:
        raise PermissionDenied(exc.message) from exc
    output = release.outputs.get(fmt)
    if output is None:
        raise Http404
    return FileResponse(open(release_dir(release) / output["path"], "rb"), as_attachment=True, filename=output["path"])
