"""Dataset pages: the catalogue entry with its sample for everyone; for stewards, a dataset's
corpus versions, release policy form with preview, release builds with progress, the release
report with a map, and publication."""
from __future__ import annotations

import json

import shapely
from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from discovery import metadata
from catalog import rules as catalog_rules
from kernel import roles
from portal import forms
from portal.catalog_views import dataset_actions
from catalog.models import Dataset
from corpora import actions as corpus_actions
from corpora.mock import mock_seed, mock_units
from corpora.schema import UNIT_KINDS
from kernel.errors import ActionError
from portal import charts
from provenance import rules as provenance_rules
from releases import actions as release_actions
from releases import previews
from releases import rules as releases_rules
from releases.actions import release_dir
from releases.location import location_policy
from releases.models import Release, ReleaseStatus
from releases.pipeline import OUTPUT_FORMATS, SHIFT_MODES, UNSHIFTED, ReleaseSpec

from . import map_views


def _steward_dataset(request, slug: str) -> Dataset:
    dataset = get_object_or_404(Dataset.objects.select_related("owner"), slug=slug)
    catalog_rules.check_manage_dataset(request.user, dataset)
    return dataset


# What the policy form offers: the pipeline's own lists ('none' is a sandbox input, never a release's shift).
RELEASE_SHIFT_MODES = [mode for mode in SHIFT_MODES if mode != UNSHIFTED]


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


class PolicyForm(django_forms.Form):
    """The release policy form's fields, typed: the spec is built from these, and checked as a
    whole by the release pipeline (ReleaseSpec) when it is saved or previewed."""

    k = django_forms.IntegerField()
    l = django_forms.IntegerField()  # noqa: E741 (the l of l-diversity)
    location = django_forms.CharField(required=False)
    coarsest_level = django_forms.IntegerField(required=False)
    finest_level = django_forms.IntegerField(required=False)
    remove_categories = django_forms.CharField(required=False)
    zone_buffer_m = django_forms.FloatField()
    height_step_m = django_forms.FloatField()
    depth_step_m = django_forms.FloatField()
    shift_mode = django_forms.CharField(required=False)
    max_offset_m = django_forms.FloatField(required=False)
    wavelength_m = django_forms.FloatField(required=False)
    cell_m = django_forms.FloatField(required=False)
    simplify_tolerance_m = django_forms.FloatField()
    precision_m = django_forms.FloatField()
    level_of_detail = django_forms.CharField(required=False)
    outputs = django_forms.MultipleChoiceField(required=False, choices=[(f, f) for f in OUTPUT_FORMATS])

    # What each shift mode needs besides the mode itself.
    SHIFT_FIELDS = {"smooth": ("max_offset_m", "wavelength_m"), "cell": ("max_offset_m", "cell_m")}

    def clean(self):
        data = super().clean()
        for name in self.SHIFT_FIELDS.get(data.get("shift_mode"), ()):
            if data.get(name) is None and name not in self.errors:
                self.add_error(name, django_forms.Field.default_error_messages["required"])
        return data


def spec_from_form(base: dict, form) -> dict:
    """A spec dict: the base spec with the form's fields written over it (FormInvalid names
    each field that is not what it should be)."""
    typed = PolicyForm(form)
    if not typed.is_valid():
        raise forms.FormInvalid({name: " ".join(found) for name, found in typed.errors.items()})
    data = typed.cleaned_data
    spec = json.loads(json.dumps(base))
    spec["desensitize"]["k"] = data["k"]
    spec["desensitize"]["l"] = data["l"]
    if "location" in form:  # the join keys follow the choice (a cell release drops building_id)
        spec["desensitize"] = location_policy(spec["desensitize"], data["location"])
    if data["coarsest_level"] is not None or data["finest_level"] is not None:
        spec["desensitize"]["cell_levels"] = [data["coarsest_level"], data["finest_level"]]
    spec["declassify"]["remove_categories"] = [c.strip() for c in data["remove_categories"].split(",") if c.strip()]
    for name in ("zone_buffer_m", "height_step_m", "depth_step_m"):
        spec["declassify"][name] = data[name]
    mode = data["shift_mode"]
    spec["shift"] = {"mode": mode, **{name: data[name] for name in PolicyForm.SHIFT_FIELDS.get(mode, ())}}
    for name in ("simplify_tolerance_m", "precision_m"):
        spec["lightweight"][name] = data[name]
    spec["lightweight"]["level_of_detail"] = data["level_of_detail"] or "room"
    spec["declassify"]["precision_m"] = spec["lightweight"]["precision_m"] or spec["declassify"]["precision_m"]
    spec["outputs"] = data["outputs"]
    return spec


class _FormError(ActionError):
    pass


class GenerateForm(django_forms.Form):
    """A generated synthetic district as a new version: its seed and size."""

    seed = django_forms.IntegerField()
    rooms = django_forms.IntegerField()


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


def dataset_page(request, slug: str):
    """The catalogue page of a dataset: its metadata, release history, a sample and the
    actions the viewer may take (dataset_actions). Anonymous visitors read open datasets'
    pages only (others are 404, as absent from their catalogue); stewards of the owning
    bureau also manage versions, policy and releases here."""
    if request.method == "POST" and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    dataset = get_object_or_404(catalog_rules.catalog_datasets(request.user, metadata.catalog_queryset()), slug=slug)
    may_manage = roles.allowed(catalog_rules.check_manage_dataset, request.user, dataset)
    if request.method == "POST" and not may_manage:
        _steward_dataset(request, slug)  # refuses with the rule's reason
    record = metadata.dataset_record(
        dataset, url=lambda name, arg: request.build_absolute_uri(reverse(name, args=[arg])),
        releases=metadata.release_history(request.user, dataset),
    )
    context = {"dataset": dataset, "record": record, "sample": dataset_sample(request.user, dataset, record),
               "may_manage": may_manage, "actions": dataset_actions(request.user, dataset, record)}
    if may_manage:
        spec, policy = _current_spec(dataset)
        context.update({
            "versions": dataset.versions.order_by("-version"),
            "policy": policy,
            "spec_json": json.dumps(spec, ensure_ascii=False, indent=2),
            "form": policy_form_values(_form_spec(request, spec)),
            "releases": Release.objects.filter(corpus__dataset=dataset)
            .select_related("corpus", "policy", "task")[:20],
            "shift_modes": RELEASE_SHIFT_MODES,
            "levels": ["room", "floor", "building", "grid"],
            "locations": [("cell", _("按格网单元（逐间属性）")), ("aggregate", _("按楼层或楼栋汇总（精确轮廓）")),
                          ("exact", _("精确几何（仅限无敏感属性）"))],
            "formats": list(OUTPUT_FORMATS),
        })
        if request.method == "POST":
            context.update(_policy_post(request, dataset, spec))
            if context.pop("saved", False):
                return redirect("dataset-page", slug=slug)
    return render(request, "portal/dataset.html", context)


def dataset_sample(user, dataset: Dataset, record: dict) -> dict:
    """Real rows of a published open release with its map; otherwise the schema's synthetic
    mock rows (conditional rows need a licence; compute-only rows never leave). The mock
    path never opens the dataset's files."""
    release = None
    if catalog_rules.shows_real_rows(user, dataset):
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
    except ActionError as exc:  # the form again as it was typed, each error beside its field
        messages.error(request, exc.message)
        typed = {name: request.POST.get(name, "") for name in PolicyForm.base_fields}
        return {"form": {**typed, "outputs": request.POST.getlist("outputs")}, "errors": forms.errors_of(exc)}


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
            size = GenerateForm(request.POST)
            if not size.is_valid():
                raise forms.FormInvalid({name: " ".join(found) for name, found in size.errors.items()})
            task = corpus_actions.start_generated_ingest(
                actor=request.user, dataset=dataset, seed=size.cleaned_data["seed"], rooms=size.cleaned_data["rooms"]
            )
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("dataset-page", slug=slug)
    # The task page shows the bar and goes on to the dataset when the ingest is done.
    return redirect(reverse("task-page", kwargs={"pk": task.pk}) + "?follow=1")


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
    qs = releases_rules.visible_releases(request.user, Release.objects.select_related("corpus__dataset", "policy", "task"))
    return get_object_or_404(qs, pk=pk)


@login_required
def release_page(request, pk: int):
    release = _visible_release(request, pk)
    shows, _licence = map_views.map_shows(request.user, release)
    may_publish = roles.allowed(catalog_rules.check_manage_dataset, request.user, release.corpus.dataset)
    return render(request, "portal/release.html", {
        "release": release, "report": release.report, "map_shows": shows, "may_publish": may_publish,
        "may_trace": roles.allowed(provenance_rules.check_view_events, request.user),
        "distortion": charts.release_distortion(release.report) if release.report else [],
    })


@login_required
@require_POST
def publish(request, pk: int):
    release = _visible_release(request, pk)
    if roles.allowed(catalog_rules.check_manage_dataset, request.user, release.corpus.dataset):
        asked = forms.confirmation(request, title=_("发布 %(release)s？") % {"release": release}, consequence=_(
            "发布后，这份数据即按其类别提供下载或申请（开放数据：任何登录用户），已下载的副本无法收回。"))
        if asked is not None:
            return asked
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
    catalog_rules.check_manage_dataset(request.user, release.corpus.dataset)
    output = release.outputs.get(fmt)
    if output is None:
        raise Http404
    return FileResponse(open(release_dir(release) / output["path"], "rb"), as_attachment=True, filename=output["path"])
