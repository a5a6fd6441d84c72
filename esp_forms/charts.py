"""Charts as inline SVG, drawn on the server: no JavaScript, no third-party library, no CDN.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` summing it up for
screen readers, a ``<title>`` on every mark for pointer users, and the numbers beside it in text
(legends with totals, tables in the template), so no information is carried by colour alone.
Text and grid lines carry plain colours for a light page and classes a page's stylesheet can
restyle (the dashboard follows the admin's dark theme that way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import count

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

_ids = count(1)

# The charts scale to their box's width; at the admin's usual width text stays 12-14 px.
WIDTH, HEIGHT = 720, 210
LINE_HEIGHT = 150
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 12, 28


@dataclass
class Series:
    label: str
    colour: str
    values: Sequence[float]


def nice_ceiling(value: float) -> int:
    """The axis maximum: four gridline steps of a round whole number (1, 2, 3, 4, 5, 6 or 8
    times a power of ten), the smallest reaching ``value``; at least 4."""
    if value <= 4:
        return 4
    power = 10 ** math.floor(math.log10(value / 4))
    for step in (1, 2, 3, 4, 5, 6, 8, 10):
        if 4 * step * power >= value:
            return int(4 * step * power)
    return int(value)  # not reached


def day_label(day: date) -> str:
    return day.strftime("%d.%m")


def _svg_open(title: str, desc: str, css_class: str, height: int) -> tuple[str, str]:
    uid = f"esp-chart-{next(_ids)}"
    head = format_html(
        '<svg class="{cls}" viewBox="0 0 {w} {h}" width="100%" role="img" '
        'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui, sans-serif" font-size="10">'
        '<title id="{uid}-t">{title}</title><desc id="{uid}-d">{desc}</desc>',
        cls=css_class, w=WIDTH, h=height, uid=uid, title=title, desc=desc)
    return uid, head


def _y_axis(maximum: float, height: int, fmt=lambda v: f"{v:g}") -> list[str]:
    parts = []
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        value = maximum * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(format_html(
            '<line class="{cls}" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}" stroke="{c}" '
            'stroke-width="1"/>'
            '<text x="{tx}" y="{ty}" text-anchor="end" fill="#4b5563">{label}</text>',
            cls="esp-chart__axis" if i == 0 else "esp-chart__grid",
            x1=LEFT, x2=WIDTH - RIGHT, y=f"{y:.1f}", c="#9ca3af" if i == 0 else "#e5e7eb",
            tx=LEFT - 6, ty=f"{y + 4:.1f}", label=fmt(value)))
    return parts


def _x_labels(days: Sequence[date], slot: float, height: int) -> list[str]:
    # About eight labels whatever the period, always including the last day.
    every = max(1, math.ceil(len(days) / 8))
    parts = []
    for i, day in enumerate(days):
        if (len(days) - 1 - i) % every:
            continue
        x = LEFT + slot * (i + 0.5)
        parts.append(format_html(
            '<text x="{x}" y="{y}" text-anchor="middle" fill="#4b5563">{label}</text>',
            x=f"{x:.1f}", y=height - BOTTOM + 16, label=day_label(day)))
    return parts


def stacked_bars(days: Sequence[date], series: Sequence[Series], *, title: str, desc: str,
                 unit: str = "") -> SafeString:
    """One bar per day, one stacked segment per series (bottom up, in order)."""
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    maximum = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar = max(2.0, slot * 0.72)
    _, head = _svg_open(title, desc, "esp-chart esp-chart--bars", HEIGHT)
    parts = [head, *_y_axis(maximum, HEIGHT)]
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for s in series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / maximum
            y -= h
            parts.append(format_html(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}">'
                '<title>{label}</title></rect>',
                x=f"{x:.1f}", y=f"{y:.1f}", w=f"{bar:.1f}", h=f"{h:.1f}", c=s.colour,
                label=f"{day_label(day)}: {value:g} {s.label}{unit}"))
    parts += _x_labels(days, slot, HEIGHT)
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))  # every piece above is escaped


def line(days: Sequence[date], values: Sequence[float | None], *, title: str, desc: str,
         colour: str, label: str) -> SafeString:
    """A 0–100 % line with a dot per day; days without a value break the line."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, LINE_HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    _, head = _svg_open(title, desc, "esp-chart esp-chart--line", LINE_HEIGHT)
    parts = [head, *_y_axis(1.0, LINE_HEIGHT, fmt=lambda v: f"{v:.0%}")]
    segment: list[str] = []
    segments: list[list[str]] = [segment]
    dots = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        if value is None:
            segment = []
            segments.append(segment)
            continue
        x, y = LEFT + slot * (i + 0.5), TOP + plot_h * (1 - value)
        segment.append(f"{x:.1f},{y:.1f}")
        dots.append(format_html(
            '<circle cx="{x}" cy="{y}" r="3.5" fill="{c}"><title>{t}</title></circle>',
            x=f"{x:.1f}", y=f"{y:.1f}", c=colour, t=f"{day_label(day)}: {value:.0%} {label}"))
    for points in segments:
        if len(points) > 1:
            parts.append(format_html(
                '<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2"/>',
                p=" ".join(points), c=colour))
    parts += dots
    parts += _x_labels(days, slot, LINE_HEIGHT)
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))  # every piece above is escaped

