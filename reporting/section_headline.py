"""The report's opening: the headline numbers against the previous period, every conversion's count,
and the daily trend lines of the last few periods.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from reporting import charts
from reporting.marts import (
    as_float,
    query_rows,
    relative_change,
)
from reporting.period import Period
from reporting.wording import humanise

TREND_PERIODS = 4


def headline_section(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    prev = period.previous()
    params = {"s": period.start, "e": period.end, "ps": prev.start, "pe": prev.end}
    web = query_rows(
        con,
        """SELECT sum(sessions) FILTER (WHERE date BETWEEN $s AND $e) AS sessions,
                  sum(sessions) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_sessions,
                  sum(engaged_sessions) FILTER (WHERE date BETWEEN $s AND $e) AS engaged,
                  sum(engaged_sessions) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_engaged
           FROM marts.web_sessions_daily WHERE date BETWEEN $ps AND $e""",
        params,
    )[0]
    tiers = {
        r["tier"]: r
        for r in query_rows(
            con,
            """SELECT tier,
                      sum(conversions) FILTER (WHERE date BETWEEN $s AND $e) AS conversions,
                      sum(conversions) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_conversions,
                      sum(conversions) FILTER (WHERE date BETWEEN $s AND $e AND source_system = 'ga4') AS web,
                      sum(conversions) FILTER (WHERE date BETWEEN $ps AND $pe AND source_system = 'ga4') AS prev_web,
                      sum(value) FILTER (WHERE date BETWEEN $s AND $e) AS value,
                      sum(value) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_value
               FROM marts.conversions_daily WHERE date BETWEEN $ps AND $e GROUP BY tier""",
            params,
        )
    }

    def metric(
        key: str, label: str, value: Any, previous: Any, kind: str, tier: str | None, note: str
    ) -> dict:
        v, p = as_float(value) or 0.0, as_float(previous) or 0.0
        return {
            "key": key,
            "label": label,
            "value": v,
            "previous": p,
            "change": relative_change(v, p),
            "kind": kind,
            "tier": tier,
            "note": note,
        }

    micro, macro = tiers.get("micro", {}), tiers.get("macro", {})
    sessions, prev_sessions = as_float(web["sessions"]) or 0.0, as_float(web["prev_sessions"]) or 0.0

    def rate(n: Any, d: float) -> float:
        return (as_float(n) or 0.0) / d if d else 0.0

    metrics = [
        metric("sessions", "Sessions", sessions, prev_sessions, "count", None, "web sessions (GA4)"),
        metric(
            "micro_conversions",
            "Micro conversions",
            micro.get("conversions"),
            micro.get("prev_conversions"),
            "count",
            "micro",
            "all sources, every micro conversion in the catalog",
        ),
        metric(
            "macro_conversions",
            "Macro conversions",
            macro.get("conversions"),
            macro.get("prev_conversions"),
            "count",
            "macro",
            "all sources: purchases, customers, deals won",
        ),
        metric(
            "web_macro_rate",
            "Web macro conversion rate",
            rate(macro.get("web"), sessions),
            rate(macro.get("prev_web"), prev_sessions),
            "rate",
            "macro",
            "GA4 macro conversions per session",
        ),
        metric(
            "macro_value",
            "Macro conversion value",
            macro.get("value"),
            macro.get("prev_value"),
            "money",
            "macro",
            "revenue of purchases and won deals",
        ),
    ]
    return {m["key"]: m for m in metrics}


def conversion_table(con: duckdb.DuckDBPyConnection, period: Period) -> list[dict]:
    prev = period.previous()
    rows = query_rows(
        con,
        """WITH c AS (
              SELECT conversion_name,
                     sum(conversions) FILTER (WHERE date BETWEEN $s AND $e) AS conversions,
                     sum(conversions) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_conversions,
                     sum(value) FILTER (WHERE date BETWEEN $s AND $e) AS value
              FROM marts.conversions_daily WHERE date BETWEEN $ps AND $e GROUP BY conversion_name)
            SELECT k.conversion_name, k.source_system, k.tier, k.kind, k.funnel_name, k.funnel_step,
                   NULL AS label,
                   coalesce(c.conversions, 0) AS conversions, coalesce(c.prev_conversions, 0) AS prev_conversions,
                   coalesce(c.value, 0) AS value
            FROM marts.conversion_catalog k LEFT JOIN c USING (conversion_name)
            ORDER BY CASE k.tier WHEN 'macro' THEN 0 ELSE 1 END, k.funnel_name NULLS LAST, k.funnel_step,
                     conversions DESC, k.conversion_name""",
        {"s": period.start, "e": period.end, "ps": prev.start, "pe": prev.end},
    )
    for r in rows:
        r["label"] = r["label"] or humanise(r["conversion_name"])
        r["change"] = relative_change(as_float(r["conversions"]), as_float(r["prev_conversions"]))
        r["sparkbar"] = charts.delta_sparkbar(
            as_float(r["conversions"]) or 0, as_float(r["prev_conversions"]) or 0, r["tier"]
        )
    return rows


def trends_section(
    con: duckdb.DuckDBPyConnection, period: Period, catalog: list[dict]
) -> dict[str, list[dict]]:
    window_start = period.end - dt.timedelta(days=period.days * TREND_PERIODS - 1)
    # Days before the marts begin are unknown, not zero: the lines start where the data does.
    (first_day,) = con.execute("SELECT min(date) FROM marts.web_sessions_daily").fetchall()[0]
    if first_day is not None and first_day > window_start:
        window_start = min(first_day, period.start)
    rows = query_rows(
        con,
        """WITH days AS (SELECT d::DATE AS date FROM generate_series($ws::DATE, $e::DATE, INTERVAL 1 DAY) t(d)),
                names AS (SELECT conversion_name FROM marts.conversion_catalog),
                counts AS (SELECT date, conversion_name, sum(conversions) AS n FROM marts.conversions_daily
                           WHERE date BETWEEN $ws AND $e GROUP BY ALL)
           SELECT names.conversion_name, days.date, coalesce(counts.n, 0) AS n
           FROM names CROSS JOIN days LEFT JOIN counts USING (conversion_name, date)
           ORDER BY names.conversion_name, days.date""",
        {"ws": window_start, "e": period.end},
    )
    points: dict[str, list[tuple[dt.date, float]]] = {}
    for r in rows:
        points.setdefault(r["conversion_name"], []).append((r["date"], float(r["n"])))
    out: dict[str, list[dict]] = {"macro": [], "micro": []}
    for conv in catalog:
        series = charts.TrendSeries(
            key=conv["conversion_name"],
            label=conv["label"],
            tier=conv["tier"],
            points=points.get(conv["conversion_name"], []),
            period_total=float(conv["conversions"]),
            previous_total=float(conv["prev_conversions"]),
        )
        out.setdefault(conv["tier"], []).append(
            {"series": series, "chart": charts.trend_small_multiple(series, period.start), "conv": conv}
        )
    return {"window_start": window_start, **out}  # type: ignore[dict-item]
