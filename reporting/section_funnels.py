"""The funnels section: each funnel's steps over the period (web funnels) or over a matured window of
creation cohorts (CRM funnels, reporting/cohort_lag.py), and its biggest leak.
"""

from __future__ import annotations

import duckdb

from reporting import charts
from reporting.cohort_lag import CohortWindow, cohort_funnels, crm_cohort_lag, crm_cohort_window
from reporting.marts import (
    as_float,
    query_rows,
)
from reporting.period import Period
from reporting.wording import humanise


def funnels_section(
    con: duckdb.DuckDBPyConnection, period: Period, tiers: dict[str, str], lag_setting: int | None = None
) -> list[dict]:
    cohort_names = cohort_funnels(con)
    lag = crm_cohort_lag(con, period, cohort_names, lag_setting) if cohort_names else None
    names = [
        r[0] for r in con.execute("SELECT DISTINCT funnel_name FROM marts.funnel_daily ORDER BY 1").fetchall()
    ]
    out = []
    for name in names:
        window = (
            crm_cohort_window(con, period, name, lag) if lag is not None and name in cohort_names else None
        )
        start, end = (window.start, window.end) if window else (period.start, period.end)
        # Rates are recomputed from the window's summed counts; daily rates cannot be averaged.
        steps = query_rows(
            con,
            """WITH s AS (
                 SELECT step_index, any_value(step_name ORDER BY date DESC) AS step_name, sum(count) AS count
                 FROM marts.funnel_daily WHERE funnel_name = $f AND date BETWEEN $s AND $e GROUP BY step_index)
               SELECT step_index, step_name, count,
                      count / nullif(lag(count) OVER w, 0) AS rate_from_previous,
                      count / nullif(first_value(count) OVER w, 0) AS rate_from_first,
                      1 - count / nullif(lag(count) OVER w, 0) AS drop_off
               FROM s WINDOW w AS (ORDER BY step_index)
               ORDER BY step_index""",
            {"f": name, "s": start, "e": end},
        )
        if not steps:
            continue
        fsteps = [
            charts.FunnelStep(
                name=s["step_name"],
                label=humanise(s["step_name"]),
                count=as_float(s["count"]) or 0.0,
                rate_from_previous=as_float(s["rate_from_previous"]),
                rate_from_first=as_float(s["rate_from_first"]),
                drop_off=as_float(s["drop_off"]),
                tier=tiers.get(s["step_name"], "micro"),
            )
            for s in steps
        ]
        # An immature cohort has not had time to move on, so its drop-offs say nothing about a leak.
        readable = window is None or window.matured
        leak = (
            max(fsteps[1:], key=lambda s: s.drop_off if s.drop_off is not None else -1, default=None)
            if readable
            else None
        )
        leak_from = fsteps[fsteps.index(leak) - 1] if leak is not None else None
        title = f"{humanise(name)} funnel"
        out.append(
            {
                "name": name,
                "title": title,
                "cohort": window is not None,
                "window": window,
                "window_start": start,
                "window_end": end,
                "basis": funnel_basis(period, window),
                "steps": fsteps,
                "leak": leak,
                "leak_from": leak_from,
                "overall": fsteps[-1].rate_from_first if fsteps else None,
                "chart": charts.funnel_chart(name, title, fsteps, highlight_worst=readable),
            }
        )
    return out


def funnel_basis(period: Period, window: CohortWindow | None) -> str:
    """One plain sentence saying what the funnel's counts are and which days they cover."""
    if window is None:
        return (
            f"Events counted {period.title} (this week). GA4 does not link one step's events to the next "
            "step's, so each rate is a ratio of event counts, not the share of people who went on."
        )
    if not window.matured:
        return (
            f"Contacts created {window.title} (this week), and how far they have got so far. No cohort is "
            f"yet {window.lag_days} days old, the time contacts need to progress ({window.reason}), so these "
            "counts are too young to show where the funnel leaks and no drop-off is singled out."
        )
    return (
        f"Contacts created {window.title} — the {(window.end - window.start).days + 1} creation days ending "
        f"{window.lag_days} days before the end of this week — and how many of them have reached each step "
        f"by now. Contacts created this week have not had time to progress; a cohort is read once it is "
        f"{window.lag_days} days old: {window.reason}."
    )
