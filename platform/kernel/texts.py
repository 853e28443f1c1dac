"""Codes that several apps show, as people read them in their language: the built-in tasks of
sandbox/tasks.py (sandbox/ is Django-free, so its English titles are translated here), their
kinds and metrics, and the release policy's levels of detail, shift modes and formats. Pages
use them as template filters (jobs/templatetags/task_texts.py); innovation's starter kits
call them."""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _

TITLES = {
    "room-use": _("按楼层、面积与街区识别房间用途"),
    "rent": _("按面积、楼层、房龄与街区估计月租金（对数）"),
}
KINDS = {"classification": _("分类"), "regression": _("回归")}
METRICS = {"accuracy": _("准确率"), "rmse": _("均方根误差（RMSE）")}


def task_title(code) -> str:
    code = getattr(code, "name", code)
    return str(TITLES.get(code, code or ""))


def task_kind(kind) -> str:
    return str(KINDS.get(kind, kind or ""))


def metric_name(metric) -> str:
    return str(METRICS.get(metric, metric or ""))


# The release policy's codes as the policy form and the location table name them.
LEVELS_OF_DETAIL = {"room": _("间"), "floor": _("楼层"), "building": _("楼栋"), "grid": _("格网单元")}
SHIFT_MODES = {"smooth": _("平滑偏转"), "cell": _("按格网单元偏转"), "gcj02": _("GCJ-02 偏转"), "none": _("不偏转")}
FORMATS = {"geoparquet": "GeoParquet", "geopackage": "GeoPackage", "geojson": "GeoJSON"}


def level_label(code) -> str:
    return str(LEVELS_OF_DETAIL.get(code, code or ""))


def shift_label(code) -> str:
    return str(SHIFT_MODES.get(code, code or ""))


def format_label(code) -> str:
    return FORMATS.get(code, code or "")
