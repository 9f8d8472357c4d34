"""Inline SVG charts for the summary report.

Hand-written SVG keeps the report self-contained (no scripts, no fonts, no network) and lets every
mark carry `data-*` attributes with the exact number it draws, so tests read values from the page.
Text inherits the page's system font stack through `font-family: inherit`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# One palette for the whole report; micro and macro keep their colours everywhere.
INK = "#1d2433"
MUTED = "#6b7280"
GRID = "#e6e8ee"
MICRO = "#0e8f83"
MICRO_LIGHT = "#cdeeea"
MACRO = "#4b3fc7"
MACRO_LIGHT = "#dcd9f7"
POSITIVE = "#1a7f45"
NEGATIVE = "#c2362b"
NEUTRAL = "#9aa1ad"
HIGHLIGHT = "#fff4d6"


def tier_colour(tier: str, light: bool = False) -> str:
    if tier == "macro":
        return MACRO_LIGHT if light else MACRO
    return MICRO_LIGHT if light else MICRO


def _num(value: float) -> str:
    """SVG coordinates with two decimals: small files, no float noise."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def fmt_int(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{round(value):,}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f} %"


def _svg_open(width: int, height: int, chart: str, label: str, extra: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{_attr(label)}" data-chart="{_attr(chart)}" class="chart" '
        f'preserveAspectRatio="xMinYMin meet" style="max-width:{width}px"{extra}>'
        f"<title>{escape(label)}</title>"
    )


@dataclass(frozen=True)
class FunnelStep:
    name: str
    label: str
    count: float
    rate_from_previous: float | None
    rate_from_first: float | None
    drop_off: float | None
    tier: str


def funnel_chart(
    funnel_name: str, title: str, steps: Sequence[FunnelStep], *, highlight_worst: bool = True
) -> Markup:
    """Centred funnel bars, one per step, with the drop-off between steps called out in red.

    `highlight_worst=False` draws no step in red: for a cohort too young to read a leak from."""
    width, label_w, bar_w = 760, 190, 430
    bar_h, gap = 34, 30
    height = 12 + len(steps) * bar_h + max(len(steps) - 1, 0) * gap + 12
    top = max((s.count for s in steps), default=0) or 1
    parts = [_svg_open(width, height, "funnel", title, f' data-funnel="{_attr(funnel_name)}"')]
    # The leakiest step (largest drop-off) is highlighted: that is where to look first.
    drops = [s.drop_off for s in steps[1:] if s.drop_off is not None]
    worst = max(drops) if drops and highlight_worst else None
    y = 12.0
    centre = label_w + bar_w / 2
    for i, step in enumerate(steps):
        if i > 0:
            is_worst = worst is not None and step.drop_off == worst
            colour = NEGATIVE if is_worst else MUTED
            lost = steps[i - 1].count - step.count
            text = f"▼ {fmt_pct(step.drop_off)} drop-off ({fmt_int(lost)} lost)"
            worst_attr = ' data-worst="true"' if is_worst else ""
            parts.append(
                f'<g class="dropoff" data-step="{_attr(step.name)}" data-drop-off="{_attr("" if step.drop_off is None else step.drop_off)}"'
                f' data-lost="{_attr(lost)}"{worst_attr}>'
                f'<text x="{_num(centre)}" y="{_num(y - gap / 2 + 4)}" text-anchor="middle" font-size="12"'
                f' fill="{colour}" font-weight="{600 if is_worst else 400}">{escape(text)}</text></g>'
            )
        w = max(bar_w * step.count / top, 2.0)
        x = centre - w / 2
        parts.append(
            f'<g class="funnel-step" data-step="{_attr(step.name)}" data-step-index="{i + 1}"'
            f' data-count="{_attr(step.count)}" data-rate-from-first="{_attr(step.rate_from_first)}">'
            f'<text x="{label_w - 14}" y="{_num(y + bar_h / 2 + 4)}" text-anchor="end" font-size="13" fill="{INK}">'
            f"{escape(step.label)}</text>"
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{bar_h}" rx="4" fill="{tier_colour(step.tier)}"/>'
            f'<text x="{label_w + bar_w + 14}" y="{_num(y + bar_h / 2 - 2)}" font-size="13" font-weight="600" fill="{INK}">'
            f"{fmt_int(step.count)}</text>"
            f'<text x="{label_w + bar_w + 14}" y="{_num(y + bar_h / 2 + 13)}" font-size="11" fill="{MUTED}">'
            f"{escape(fmt_pct(step.rate_from_first) + ' of first step')}</text>"
            "</g>"
        )
        y += bar_h + gap
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class TrendSeries:
    key: str
    label: str
    tier: str
    points: Sequence[tuple[dt.date, float]]
    period_total: float
    previous_total: float


def trend_small_multiple(series: TrendSeries, period_start: dt.date) -> Markup:
    """One small line chart: the trend window, the reporting period shaded, the last value dotted."""
    width, height = 240, 96
    pad_l, pad_r, pad_t, pad_b = 6, 6, 8, 18
    values = [v for _, v in series.points]
    n = len(values)
    top = max(values, default=0) or 1
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad_l + (inner_w * i / (n - 1) if n > 1 else inner_w / 2)
        return x, pad_t + inner_h - inner_h * v / top

    colour = tier_colour(series.tier)
    data_points = ",".join(f"{d.isoformat()}:{v:g}" for d, v in series.points)
    parts = [
        _svg_open(
            width,
            height,
            "trend",
            f"{series.label}: daily count",
            f' data-conversion="{_attr(series.key)}" data-tier="{_attr(series.tier)}"'
            f' data-period-total="{_attr(series.period_total)}" data-points="{_attr(data_points)}"',
        )
    ]
    first_in_period = next((i for i, (d, _) in enumerate(series.points) if d >= period_start), None)
    if first_in_period is not None and n > 1:
        x0 = xy(first_in_period, 0)[0] - (inner_w / (n - 1)) / 2
        parts.append(
            f'<rect x="{_num(max(x0, pad_l))}" y="{pad_t - 4}" width="{_num(width - pad_r - max(x0, pad_l))}"'
            f' height="{_num(inner_h + 8)}" fill="{HIGHLIGHT}" rx="3"/>'
        )
    parts.append(
        f'<line x1="{pad_l}" y1="{_num(pad_t + inner_h)}" x2="{width - pad_r}" y2="{_num(pad_t + inner_h)}"'
        f' stroke="{GRID}" stroke-width="1"/>'
    )
    if n:
        coords = [xy(i, v) for i, v in enumerate(values)]
        area = (
            f"M{_num(coords[0][0])},{_num(pad_t + inner_h)} "
            + " ".join(f"L{_num(x)},{_num(y)}" for x, y in coords)
            + f" L{_num(coords[-1][0])},{_num(pad_t + inner_h)} Z"
        )
        line = "M" + " L".join(f"{_num(x)},{_num(y)}" for x, y in coords)
        parts.append(f'<path d="{area}" fill="{tier_colour(series.tier, light=True)}" opacity="0.55"/>')
        parts.append(
            f'<path d="{line}" fill="none" stroke="{colour}" stroke-width="1.8" stroke-linejoin="round"'
            ' stroke-linecap="round"/>'
        )
        lx, ly = coords[-1]
        parts.append(f'<circle cx="{_num(lx)}" cy="{_num(ly)}" r="2.8" fill="{colour}"/>')
        first_date, last_date = series.points[0][0], series.points[-1][0]
        parts.append(
            f'<text x="{pad_l}" y="{height - 4}" font-size="10" fill="{MUTED}">{first_date:%d %b}</text>'
            f'<text x="{width - pad_r}" y="{height - 4}" font-size="10" fill="{MUTED}" text-anchor="end">'
            f"{last_date:%d %b}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class IntervalRow:
    key: str
    label: str
    sublabel: str
    estimate: float | None
    low: float | None
    high: float | None
    significant: bool
    q_value: float | None


def shared_domain(rows: Sequence[IntervalRow], reference: float = 1.0) -> tuple[float, float]:
    values = [
        v for r in rows for v in (r.estimate, r.low, r.high) if v is not None and math.isfinite(v) and v > 0
    ] or [reference]
    return max(min(min(values), reference) / 1.15, 0.05), min(max(max(values), reference) * 1.15, 50.0)


def _nice_log_ticks(lo: float, hi: float) -> list[float]:
    candidates = [0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 10, 20, 50]
    ticks = [t for t in candidates if lo <= t <= hi]
    if len(ticks) > 7:
        ticks = [t for t in ticks if t in (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50)]
    return ticks


def interval_chart(
    chart: str,
    title: str,
    rows: Sequence[IntervalRow],
    *,
    reference: float = 1.0,
    log_scale: bool = True,
    dimension: str | None = None,
    domain: tuple[float, float] | None = None,
    reference_label: str = "same as the rest",
) -> Markup:
    """A forest plot: one row per item, a dot at the estimate and a bar over its 95 % interval.

    Lift is a ratio, so the axis is logarithmic (halving and doubling look equally far from 1×).
    Significant rows are coloured by direction; the rest are grey.
    """
    width, label_w, right_w = 760, 230, 120
    row_h, top_pad, bottom_pad = 26, 10, 30
    height = top_pad + max(len(rows), 1) * row_h + bottom_pad
    finite = [
        v for r in rows for v in (r.estimate, r.low, r.high) if v is not None and math.isfinite(v) and v > 0
    ] or [reference]
    # Tiny segments can have intervals spanning orders of magnitude; the axis stops at 1/20× and 50×.
    lo = max(min(min(finite), reference) / 1.15, 0.05)
    hi = min(max(max(finite), reference) * 1.15, 50.0)
    if domain is not None:  # small multiples share one axis so panels compare at a glance
        lo, hi = domain
    if not log_scale:
        lo, hi = min(min(finite), reference), max(max(finite), reference)
        span = (hi - lo) or 1
        lo, hi = lo - span * 0.08, hi + span * 0.08
    plot_l, plot_r = label_w, width - right_w

    def sx(v: float) -> float:
        v = min(max(v, lo), hi)
        if log_scale:
            return plot_l + (plot_r - plot_l) * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return plot_l + (plot_r - plot_l) * (v - lo) / (hi - lo)

    extra = f' data-dimension="{_attr(dimension)}"' if dimension else ""
    parts = [_svg_open(width, height, chart, title, extra)]
    axis_y = top_pad + len(rows) * row_h + 4
    ticks = _nice_log_ticks(lo, hi) if log_scale else []
    for t in ticks:
        x = sx(t)
        parts.append(
            f'<line x1="{_num(x)}" y1="{top_pad - 4}" x2="{_num(x)}" y2="{_num(axis_y)}" stroke="{GRID}"/>'
            f'<text x="{_num(x)}" y="{_num(axis_y + 14)}" font-size="10" fill="{MUTED}" text-anchor="middle">'
            f"{t:g}×</text>"
        )
    ref_x = sx(reference)
    parts.append(
        f'<line x1="{_num(ref_x)}" y1="{top_pad - 4}" x2="{_num(ref_x)}" y2="{_num(axis_y)}" stroke="{INK}"'
        ' stroke-dasharray="3 3" stroke-width="1"/>'
    )
    for i, row in enumerate(rows):
        cy = top_pad + i * row_h + row_h / 2
        if row.significant and row.estimate is not None:
            colour = POSITIVE if row.estimate >= reference else NEGATIVE
        else:
            colour = NEUTRAL
        if i % 2 == 0:
            parts.append(
                f'<rect x="0" y="{_num(cy - row_h / 2)}" width="{width}" height="{row_h}" fill="#f7f8fa"/>'
            )
        parts.append(
            f'<g class="interval-row" data-key="{_attr(row.key)}" data-rank="{i + 1}"'
            f' data-estimate="{_attr(row.estimate)}" data-low="{_attr(row.low)}" data-high="{_attr(row.high)}"'
            f' data-significant="{str(bool(row.significant)).lower()}">'
            f'<text x="8" y="{_num(cy + 4)}" font-size="12.5" fill="{INK}">{escape(row.label)}'
            f'<tspan fill="{MUTED}" font-size="11"> {escape(row.sublabel)}</tspan></text>'
        )
        if (
            row.low is not None
            and row.high is not None
            and math.isfinite(row.low)
            and math.isfinite(row.high)
        ):
            parts.append(
                f'<line x1="{_num(sx(max(row.low, 1e-9)))}" y1="{_num(cy)}" x2="{_num(sx(max(row.high, 1e-9)))}"'
                f' y2="{_num(cy)}" stroke="{colour}" stroke-width="3" stroke-linecap="round" opacity="0.55"/>'
            )
        if row.estimate is not None and math.isfinite(row.estimate):
            parts.append(
                f'<circle cx="{_num(sx(max(row.estimate, 1e-9)))}" cy="{_num(cy)}" r="5" fill="{colour}"'
                ' stroke="#fff" stroke-width="1.5"/>'
            )
        label = "–" if row.estimate is None else f"{row.estimate:.2f}×"
        parts.append(
            f'<text x="{width - right_w + 12}" y="{_num(cy + 4)}" font-size="12" fill="{INK}"'
            f' font-weight="{600 if row.significant else 400}">{label}'
            f'<tspan fill="{MUTED}" font-size="10.5" font-weight="400">'
            f"{escape(_q_label(row.q_value))}</tspan></text></g>"
        )
    parts.append(
        f'<text x="{_num(ref_x)}" y="{_num(axis_y + 26)}" font-size="10" fill="{MUTED}" text-anchor="middle">'
        f"{escape(reference_label)}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _q_label(q: float | None) -> str:
    if q is None or (isinstance(q, float) and math.isnan(q)):
        return ""
    if q < 0.001:
        return "  q<0.001"
    return f"  q={q:.3f}" if q < 0.1 else f"  q={q:.2f}"


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    value: float
    display: str


def bar_chart(chart: str, title: str, bars: Sequence[Bar], colour: str = MACRO) -> Markup:
    """Horizontal bars, sorted by the caller, value printed at the end of each bar."""
    width, label_w, right_w = 760, 170, 110
    row_h = 24
    height = 8 + max(len(bars), 1) * row_h + 8
    top = max((b.value for b in bars), default=0) or 1
    parts = [_svg_open(width, height, chart, title)]
    for i, bar in enumerate(bars):
        y = 8 + i * row_h
        w = max((width - label_w - right_w) * bar.value / top, 1.0)
        parts.append(
            f'<g class="bar" data-key="{_attr(bar.key)}" data-value="{_attr(bar.value)}">'
            f'<text x="{label_w - 10}" y="{_num(y + row_h / 2 + 4)}" font-size="12.5" text-anchor="end"'
            f' fill="{INK}">{escape(bar.label)}</text>'
            f'<rect x="{label_w}" y="{_num(y + 4)}" width="{_num(w)}" height="{row_h - 8}" rx="3" fill="{colour}"/>'
            f'<text x="{_num(label_w + w + 8)}" y="{_num(y + row_h / 2 + 4)}" font-size="12" fill="{INK}">'
            f"{escape(bar.display)}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def delta_sparkbar(current: float, previous: float, tier: str) -> Markup:
    """Two thin bars (previous, current) for the per-conversion table."""
    width, height = 90, 18
    top = max(current, previous) or 1
    cw, pw = 86 * current / top, 86 * previous / top
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' aria-hidden="true" class="sparkbar">'
        f'<rect x="0" y="2" width="{_num(max(pw, 1))}" height="5" rx="2" fill="{NEUTRAL}" opacity="0.5"/>'
        f'<rect x="0" y="10" width="{_num(max(cw, 1))}" height="6" rx="2" fill="{tier_colour(tier)}"/></svg>'
    )
