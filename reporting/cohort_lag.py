"""Which creation cohorts the CRM funnel is reported over, and why.

CRM funnels count creation cohorts (see marts.funnel_daily): a cohort created this week has had no
time to progress, so its funnel is read from an older, matured window of cohorts instead. How old is
old enough comes from the setting (STEPWISE_CRM_COHORT_LAG_DAYS, passed in), else is measured from
the stage history in the analyst file, else is 28 days.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb

from reporting.errors import ExportError
from reporting.marts import has_table, query_rows
from reporting.period import Period
from reporting.wording import humanise

# CRM funnels count creation cohorts (see marts.funnel_daily): a cohort created this week has had no
# time to progress, so its funnel is read from an older, matured window of cohorts instead.
CRM_COHORT_DAYS = 28
DEFAULT_CRM_LAG_DAYS = 28
CRM_LAG_ENV = "STEPWISE_CRM_COHORT_LAG_DAYS"

# A lag measured from the data is trusted only with enough converted contacts, and only when the
# history is long enough that conversions twice as slow as the estimate could have been seen (the
# lags of contacts still on their way are not yet known, so a short history understates the lag).
MIN_LAG_SAMPLE = 30
LAG_QUANTILE = 0.75


@dataclass(frozen=True)
class CohortLag:
    days: int
    reason: str
    source: str  # 'setting', 'data' or 'default'


@dataclass(frozen=True)
class CohortWindow:
    start: dt.date
    end: dt.date
    lag_days: int
    reason: str
    matured: bool  # False: no cohort is that old yet, and the window shown is the report's own week

    @property
    def title(self) -> str:
        return Period(self.start, self.end).title


def cohort_funnels(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The funnels of `marts.funnel_daily` whose rows are creation cohorts (HubSpot), not daily events."""
    return {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT funnel_name FROM marts.funnel_daily WHERE count_unit LIKE 'contacts (cohort%'"
        ).fetchall()
    }


def parse_lag_setting(value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        days = int(value)
    except (TypeError, ValueError):
        days = -1
    if days < 0:
        raise ExportError(
            f"{CRM_LAG_ENV}={value!r} is not a number of days: set it to a whole number >= 0 "
            "(how old a contact cohort must be before its CRM funnel is reported), or unset it"
        )
    return days


def crm_cohort_lag(
    con: duckdb.DuckDBPyConnection, period: Period, funnels: set[str], setting: int | None = None
) -> CohortLag:
    """How many days a CRM cohort needs before its funnel is worth reading.

    A setting wins; else the 75th percentile of the days from creation to the funnel's last step among
    contacts that reached it by the period's end, rounded up to whole weeks; else 28 days."""
    if setting is not None:
        return CohortLag(setting, f"set by {CRM_LAG_ENV}", "setting")
    default = CohortLag(
        DEFAULT_CRM_LAG_DAYS,
        f"{DEFAULT_CRM_LAG_DAYS} days is the default, as the analyst file has too little lifecycle-stage "
        "history to measure how long contacts take to reach the funnel's last step",
        "default",
    )
    needed = ("hubspot_contact_facts", "hubspot_contact_stage_events")
    if not funnels or not all(has_table(con, "staging", t) for t in needed):
        return default
    rows = query_rows(
        con,
        """WITH last_step AS (
             SELECT funnel_name, conversion_name, signal FROM marts.conversion_catalog
             WHERE source_system = 'hubspot' AND signal_type = 'lifecycle_stage' AND funnel_name IN $funnels
             QUALIFY funnel_step = max(funnel_step) OVER (PARTITION BY funnel_name)),
           reached AS (
             SELECT l.conversion_name, f.portal_id, f.contact_id, f.created_date, min(e.entered_date) AS reached_date
             FROM staging.hubspot_contact_facts AS f
             JOIN staging.hubspot_contact_stage_events AS e USING (portal_id, contact_id)
             JOIN last_step AS l ON e.stage = l.signal
             WHERE f.created_date <= $end AND e.entered_date <= $end
             GROUP BY ALL)
           SELECT any_value(conversion_name) AS step, count(*) AS contacts,
                  quantile_disc(greatest(reached_date - created_date, 0), $q) AS lag_days,
                  (SELECT min(created_date) FROM staging.hubspot_contact_facts) AS first_created
           FROM reached""",
        {"funnels": sorted(funnels), "end": period.end, "q": LAG_QUANTILE},
    )[0]
    if not rows["contacts"] or rows["contacts"] < MIN_LAG_SAMPLE or rows["lag_days"] is None:
        return default
    measured = int(rows["lag_days"])
    days = max(7, math.ceil(measured / 7) * 7)
    history = (period.end - rows["first_created"]).days + 1
    if history < max(2 * days, days + CRM_COHORT_DAYS):
        return default
    return CohortLag(
        days,
        f"3 in 4 of the {int(rows['contacts']):,} contacts who became {humanise(rows['step'])} did so within "
        f"{measured} days of being created (rounded up to whole weeks)",
        "data",
    )


def crm_cohort_window(
    con: duckdb.DuckDBPyConnection, period: Period, funnel: str, lag: CohortLag
) -> CohortWindow:
    """The `CRM_COHORT_DAYS` creation days ending `lag.days` before the period's end (clipped to the data)."""
    end = period.end - dt.timedelta(days=lag.days)
    start = end - dt.timedelta(days=CRM_COHORT_DAYS - 1)
    (first,) = con.execute(
        "SELECT min(date) FROM marts.funnel_daily WHERE funnel_name = ?", [funnel]
    ).fetchall()[0]
    if first is None or end < first:
        return CohortWindow(period.start, period.end, lag.days, lag.reason, matured=False)
    return CohortWindow(max(start, first), end, lag.days, lag.reason, matured=True)
