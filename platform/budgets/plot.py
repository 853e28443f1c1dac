"""A budget's history as an SVG drawn on the server: cumulative ε spent over time, as a step
line, against ε_total (which grants raise). No JS, no CDN. No Django here.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

SPENT_COLOUR = "#2f5fb3"
TOTAL_COLOUR = "#b3261e"


@dataclass(frozen=True)
class Step:
    """The budget just after one entry."""

    at: datetime
    kind: str  # grant | spend | refund
    spent: Decimal  # cumulative ε spent
    total: Decimal  # ε_total
    label: str  # what the entry was, for its tooltip


def steps(entries: Iterable[tuple[datetime, str, Decimal, str]]) -> list[Step]:
    """Cumulative totals from (at, kind, ε, label) entries in the order they were written."""
    spent = total = Decimal(0)
    out = []
    for at, kind, epsilon, label in entries:
        if kind == "grant":
            total += epsilon
        elif kind == "spend":
            spent += epsilon
        elif kind == "refund":
            spent -= epsilon
        else:
            raise ValueError(f"unknown entry kind {kind!r}")
        out.append(Step(at, kind, spent, total, label))
    return out


def _number(value: float) -> str:
    return f"{value:.6g}"


def budget_svg(
    history: list[Step], *, title: str, spent_label: str, total_label: str,
    width: int = 720, height: int = 300, time_format: str = "%Y-%m-%d %H:%M",
) -> str:
    left, right, top, bottom = 56, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    final = history[-1] if history else None
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{html.escape(title)}" data-testid="budget-plot" data-points="{len(history)}" '
        f'data-spent="{final.spent if final else 0}" data-total="{final.total if final else 0}">'
        f'<rect width="{width}" height="{height}" fill="#fbfcfd"/>'
    )
    if not history:
        return head + "</svg>"
    t0 = history[0].at.timestamp()
    span = history[-1].at.timestamp() - t0
    y_max = float(max(max(s.total for s in history), max(s.spent for s in history))) or 1.0

    def x(step_index: int) -> float:
        if span <= 0:  # everything at one instant: spread the entries evenly instead
            return left + plot_w * (step_index + 1) / (len(history) + 1)
        return left + plot_w * (history[step_index].at.timestamp() - t0) / span

    def y(value: Decimal | float) -> float:
        return top + plot_h * (1 - float(value) / (y_max * 1.08))

    parts = [head]
    for i in range(5):  # horizontal grid lines with their ε labels
        value = y_max * i / 4
        yy = y(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e7ec"/>'
            f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{_number(value)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#888"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#888"/>'
        f'<text x="{left}" y="{height - 14}" font-size="11" fill="#555">{html.escape(history[0].at.strftime(time_format))}</text>'
        f'<text x="{left + plot_w}" y="{height - 14}" font-size="11" text-anchor="end" fill="#555">'
        f'{html.escape(history[-1].at.strftime(time_format))}</text>'
    )
    for series, colour, dash, width_px in (("total", TOTAL_COLOUR, ' stroke-dasharray="6 4"', 1.5),
                                             ("spent", SPENT_COLOUR, "", 2)):
        path = [f"M{x(0):.1f},{y(0):.1f}"]
        for i, step in enumerate(history):
            path.append(f"H{x(i):.1f}V{y(getattr(step, series)):.1f}")
        path.append(f"H{left + plot_w:.1f}")
        parts.append(
            f'<path data-series="{series}" d="{"".join(path)}" fill="none" stroke="{colour}" '
            f'stroke-width="{width_px}"{dash}/>'
        )
    parts.append('<g data-series="entries">')
    for i, step in enumerate(history):
        if step.kind != "grant":
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(step.spent):.1f}" r="3" fill="{SPENT_COLOUR}">'
                f"<title>{html.escape(step.label)}</title></circle>"
            )
    parts.append("</g>")
    parts.append(
        f'<line x1="{left + 8}" x2="{left + 32}" y1="14" y2="14" stroke="{SPENT_COLOUR}" stroke-width="2"/>'
        f'<text x="{left + 38}" y="18" font-size="12">{html.escape(spent_label)}</text>'
        f'<line x1="{left + 200}" x2="{left + 224}" y1="14" y2="14" stroke="{TOTAL_COLOUR}" stroke-dasharray="6 4"/>'
        f'<text x="{left + 230}" y="18" font-size="12">{html.escape(total_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
