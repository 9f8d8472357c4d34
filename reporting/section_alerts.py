"""Report sections: the week's conversion alerts (marts.conversion_anomalies) and the time-to-convert curves
by channel (marts.time_to_convert and marts.time_to_convert_curve). Templates: _alerts.html.j2 and
_time_to_convert.html.j2, included by summary.html.j2; report.build_summary calls the two builders.
"""

from __future__ import annotations

from html import escape
from typing import Any

import duckdb
from markupsafe import Markup

from reporting import charts

# Text columns of these marts that the CSV/Parquet export may carry (names of conversions, steps, channels).
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "conversion_anomalies": (
        "anomaly_id", "source_id", "series_type", "conversion_name", "funnel_name", "denominator_name", "kind",
        "severity",
    ),
    "time_to_convert": ("channel", "from_step", "to_step"),
    "time_to_convert_curve": ("channel", "from_step", "to_step"),
}  # fmt: skip
ALL_CHANNELS = "All channels"
CURVE_COLOURS = (
    "#4b3fc7", "#0e8f83", "#c2362b", "#d48a00", "#1f77b4", "#8c564b", "#e377c2", "#7f7f7f", "#17becf",
)  # fmt: skip
KIND_WORDS = {"zero": "stopped", "drop": "dropped", "spike": "spiked"}


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def alerts_section(con: duckdb.DuckDBPyConnection, period: Any) -> dict[str, Any]:
    """The anomalies dated inside the period, newest first."""
    if not _has(con, "conversion_anomalies"):
        return {"rows": [], "available": False}
    cur = con.execute(
        """
        SELECT anomaly_id, date, series_type, conversion_name, funnel_name, step_index, denominator_name, observed,
            expected, interval_low, interval_high, relative_change, kind, severity, delivered
        FROM marts.conversion_anomalies WHERE date BETWEEN ? AND ?
        ORDER BY date DESC, severity, conversion_name, step_index
        """,
        [period.start, period.end],
    )
    names = [d[0] for d in cur.description]
    rows = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        row["series"] = (
            f"{row['conversion_name']} per {row['denominator_name']} (step {row['step_index']})"
            if row["series_type"] == "funnel_step"
            else f"{row['conversion_name']} per session"
        )
        row["what"] = KIND_WORDS.get(row["kind"], row["kind"])
        rows.append(row)
    return {"rows": rows, "available": True}


def _curve_chart(pair_title: str, curves: list[dict[str, Any]], max_day: int) -> Markup:
    """Step lines of the share converted by day, one per channel, 0..max_day on x and 0..y_max on y."""
    width, height, left, right, top, bottom = 640, 300, 48, 150, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max([0.05] + [max(p[1] for p in c["points"]) for c in curves if c["points"]])
    y_max = min(1.0, (int(y_max * 20) + 1) / 20)  # next 5 %

    def x(day: float) -> float:
        return left + plot_w * day / max(max_day, 1)

    def y(share: float) -> float:
        return top + plot_h * (1 - share / y_max)

    parts = [
        charts._svg_open(
            width, height, "time-to-convert", f"Share converted by day since start: {pair_title}"
        )
    ]
    digits = 0 if round(y_max * 100) % 4 == 0 else 1  # ticks at quarters of the axis
    for i in range(5):
        share = y_max * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{charts._num(y(share))}" y2="{charts._num(y(share))}" '
            f'stroke="{charts.GRID}"/><text x="{left - 6}" y="{charts._num(y(share) + 4)}" text-anchor="end" '
            f'font-size="11" fill="{charts.MUTED}" font-family="inherit">{share * 100:.{digits}f} %</text>'
        )
    for day in range(0, max_day + 1, max(1, max_day // 6)):
        parts.append(
            f'<text x="{charts._num(x(day))}" y="{height - bottom + 16}" text-anchor="middle" font-size="11" '
            f'fill="{charts.MUTED}" font-family="inherit">{day}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" font-size="11" fill="{charts.MUTED}" '
        'font-family="inherit">days since the start step</text>'
    )
    for i, curve in enumerate(curves):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        points = curve["points"]
        if not points:
            continue
        path = [f"M{charts._num(x(points[0][0]))},{charts._num(y(points[0][1]))}"]
        for (_d0, _s0), (d1, s1) in zip(points, points[1:], strict=False):
            path.append(f"H{charts._num(x(d1))}V{charts._num(y(s1))}")
        width_px = 3 if curve["channel"] == ALL_CHANNELS else 1.6
        parts.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="{width_px}" '
            f'data-channel="{charts._attr(curve["channel"])}" data-last-day="{points[-1][0]}" '
            f'data-last-share="{points[-1][1]!r}"/>'
        )
        ly = top + 14 * i + 8
        parts.append(
            f'<rect x="{left + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + plot_w + 24}" y="{ly + 1}" font-size="11" fill="{charts.INK}" '
            f'font-family="inherit">{escape(curve["channel"])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def time_to_convert_section(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """From contact creation to the CRM funnel's last step (customer), per channel: the table and the curves."""
    if not (_has(con, "time_to_convert") and _has(con, "time_to_convert_curve")):
        return {"available": False, "rows": []}
    pair = con.execute(
        """
        SELECT t.from_step, t.to_step FROM marts.time_to_convert AS t
        LEFT JOIN marts.conversion_catalog AS k ON k.conversion_name = t.to_step
        WHERE t.channel = ? AND t.from_step = 'contact_created'
        ORDER BY (k.tier = 'macro') DESC NULLS LAST, k.funnel_step DESC NULLS LAST, t.to_step
        LIMIT 1
        """,
        [ALL_CHANNELS],
    ).fetchall()
    if not pair:
        return {"available": False, "rows": []}
    from_step, to_step = pair[0]
    cur = con.execute(
        """
        SELECT channel, contacts_at_risk, events, censored, median_days, median_ci_low_days, median_ci_high_days,
            p25_days, converted_by_7d, converted_by_30d, converted_by_90d, max_follow_up_days
        FROM marts.time_to_convert WHERE from_step = ? AND to_step = ?
        ORDER BY channel = ? DESC, converted_by_30d DESC NULLS LAST, channel
        """,
        [from_step, to_step, ALL_CHANNELS],
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    points: dict[str, list[tuple[int, float]]] = {}
    for channel, day, share in con.execute(
        "SELECT channel, day, share_converted FROM marts.time_to_convert_curve "
        "WHERE from_step = ? AND to_step = ? ORDER BY channel, day",
        [from_step, to_step],
    ).fetchall():
        points.setdefault(channel, []).append((int(day), float(share)))
    curves = [{"channel": r["channel"], "points": points.get(r["channel"], [])} for r in rows]
    max_day = max([0] + [p[-1][0] for p in points.values() if p])
    title = f"{from_step.replace('_', ' ')} → {to_step.replace('_', ' ')}"
    return {
        "available": True,
        "from_step": from_step,
        "to_step": to_step,
        "title": title,
        "rows": rows,
        "chart": _curve_chart(title, curves, max_day),
    }
