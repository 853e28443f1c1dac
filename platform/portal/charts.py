"""Charts of the portal's pages, as plain data for static/miliao/charts.js (Apache ECharts).

Each chart is a dict the template passes through `json_script` and a table of the same
numbers (the <details> fallback a screen reader or a text browser reads). Axis names carry
their units and are translated here, where the page's language is known.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.translation import gettext as _

# Groups drawn of a code-to-data job's aggregates: the largest counts (the table has them all).
MAX_GROUPS = 40


@dataclass
class Chart:
    id: str  # the json_script's id, and the element's data-chart
    title: str
    spec: dict
    columns: list[str] = field(default_factory=list)  # the fallback table
    rows: list[list] = field(default_factory=list)

    @property
    def data_id(self) -> str:
        return f"{self.id}-data"


def _number(value):
    """A finite float, or None (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _line_chart(id_, title, x, y_name, series) -> Chart:
    """series: [(name, field or None, [(x, y), ...], kind)]."""
    spec = {"x": x, "y": {"name": y_name},
            "series": [{"name": name, "kind": kind, "field": fld, "data": [list(p) for p in points]}
                       for name, fld, points, kind in series]}
    xs = sorted({p[0] for _, _, points, _ in series for p in points}, key=str)
    lookup = [{p[0]: p[1] for p in points} for _, _, points, _ in series]
    rows = [[x_value, *[values.get(x_value, "") for values in lookup]] for x_value in xs]
    return Chart(id_, title, spec, [x["name"], *[s[0] for s in series]], rows)


def _step(row: dict, i: int):
    for key in ("round", "epoch", "step"):
        if key in row:
            return row[key]
    return i + 1


def training_curves(history: list[dict], *, task_kind: str, metric: str) -> list[Chart]:
    """Loss, the held-out metric and ε spent, per federated round or per epoch."""
    federated = any("round" in row for row in history)
    x = {"name": _("联邦轮次") if federated else _("周期"), "type": "value", "whole": True}

    def points(name: str) -> list:
        return [(_step(row, i), v) for i, row in enumerate(history) if (v := _number(row.get(name))) is not None]

    loss_name = _("训练损失（交叉熵）") if task_kind == "classification" else _("训练损失（均方误差）")
    if metric == "accuracy":
        metric_name = _("留出集准确率（0–1）")
    elif metric == "rmse":
        metric_name = _("留出集 RMSE（对数月租金）")
    else:
        metric_name = metric
    charts = [
        _line_chart("chart-loss", _("训练损失"), x, loss_name, [(_("损失"), "loss", points("loss"), "line")]),
        _line_chart("chart-metric", _("留出集指标"), x, metric_name, [(metric_name, metric, points(metric), "line")]),
    ]
    epsilon = points("epsilon")
    if epsilon or not history:
        charts.append(_line_chart("chart-epsilon", _("已用隐私预算"), x, _("累计已用 ε"),
                                  [(_("已用 ε"), "epsilon", epsilon, "line")]))
        charts[-1].spec["y"]["zero"] = True
    return charts


def budget_over_time(history, *, until=None) -> Chart:
    """Cumulative ε spent against ε_total, a step per entry (budgets.plot.steps), the last
    level drawn on to `until` (now)."""
    x = {"name": _("时间"), "type": "time"}
    spent = [(s.at.isoformat(timespec="seconds"), float(s.spent)) for s in history]
    total = [(s.at.isoformat(timespec="seconds"), float(s.total)) for s in history]
    if history and until is not None and until > history[-1].at:
        spent.append((until.isoformat(timespec="seconds"), spent[-1][1]))
        total.append((until.isoformat(timespec="seconds"), total[-1][1]))
    chart = _line_chart("chart-budget", _("累计已用 ε"), x, "ε",
                        [(_("累计已用 ε"), None, spent, "step"), (_("ε 总额"), None, total, "step")])
    chart.spec["y"]["zero"] = True
    chart.spec["series"][1]["dashed"] = True
    chart.rows = [[s.at.strftime("%Y-%m-%d %H:%M:%S"), s.label, float(s.spent), float(s.total)] for s in history]
    chart.columns = [_("时间"), _("记录"), _("累计已用 ε"), _("ε 总额")]
    return chart


def _distribution(id_, title, unit_name, figures, scale: float = 1.0) -> Chart | None:
    """A measured distribution: its histogram where the release recorded one, else its
    percentiles (older releases kept only p50, p95 and max)."""
    if not figures:
        return None
    histogram = figures.get("histogram")
    if histogram and histogram.get("counts"):
        edges = [e * scale for e in histogram["edges"]]
        labels = [f"{_fmt(lo)}–{_fmt(hi)}" for lo, hi in zip(edges, edges[1:])]
        counts = histogram["counts"]
        spec = {"x": {"name": unit_name, "type": "category", "categories": labels},
                "y": {"name": _("单元数"), "zero": True},
                "series": [{"name": _("单元数"), "kind": "bar", "data": counts}]}
        return Chart(id_, title, spec, [unit_name, _("单元数")], [[lbl, n] for lbl, n in zip(labels, counts)])
    names = [("p50", _("中位数")), ("p95", _("95 分位")), ("max", _("最大值"))]
    present = [(label, _number(figures.get(key))) for key, label in names]
    present = [(label, v * scale) for label, v in present if v is not None]
    if not present:
        return None
    spec = {"x": {"name": _("分位"), "type": "category", "categories": [p[0] for p in present]},
            "y": {"name": unit_name, "zero": True},
            "series": [{"name": unit_name, "kind": "bar", "data": [round(p[1], 4) for p in present]}]}
    return Chart(id_, title, spec, [_("分位"), unit_name], [[p[0], _fmt(p[1])] for p in present])


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def release_distortion(report: dict) -> list[Chart]:
    """How far the shift moved units and how much it changed their areas and lengths."""
    measured = (report or {}).get("shift", {}).get("measured") or {}
    charts = [
        _distribution("chart-offset", _("偏移距离分布"), _("偏移距离（米）"), measured.get("offset_m")),
        _distribution("chart-area", _("面积相对误差分布"), _("面积相对误差（%）"), measured.get("area_error"), 100.0),
        _distribution("chart-length", _("长度相对误差分布"), _("长度相对误差（%）"), measured.get("length_error"), 100.0),
    ]
    return [c for c in charts if c is not None]


def code_aggregates(path: Path, spec: dict) -> list[Chart]:
    """A code-to-data job's DP aggregates (aggregates.csv): the noisy count of each group and
    each value column's noisy mean, the largest groups first."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    by = [c for c in spec.get("by", []) if c in rows[0]]
    values = [c for c in spec.get("values", {}) if f"{c}_mean" in rows[0]]
    rows.sort(key=lambda r: -(_number(r.get("count")) or 0))

    def label(row):
        return " · ".join(row[c] for c in by) or _("全部")

    shown = rows[:MAX_GROUPS]
    group_name = " · ".join(by) or _("分组")
    charts = []
    for id_, title, y_name, column in [("chart-agg-count", _("各组计数（含噪声）"), _("计数"), "count"),
                                       *[(f"chart-agg-{i}", _("%(column)s 的组均值（含噪声）") % {"column": c},
                                          c, f"{c}_mean") for i, c in enumerate(values)]]:
        data = [_number(r.get(column)) for r in shown]
        spec_ = {"x": {"name": group_name, "type": "category", "categories": [label(r) for r in shown]},
                 "y": {"name": y_name, "zero": True},
                 "series": [{"name": y_name, "kind": "bar", "data": data}]}
        table = [[label(r), _fmt(v) if (v := _number(r.get(column))) is not None else "—"] for r in rows]
        charts.append(Chart(id_, title, spec_, [group_name, y_name], table))
    return charts
