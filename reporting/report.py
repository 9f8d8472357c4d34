"""The weekly summary export: one self-contained HTML report plus CSV and Parquet of the summary marts.

Reads only `marts.*` from a read-only connection to the analyst file, aggregates in SQL, and writes
everything for one period under `<out_root>/<period label>/`. The directory is assembled beside its
final place and renamed in, so a reader (or a mail job) never sees half a report.

Personal data never leaves: every export selects named aggregate columns only (a column named like
personal data refuses the export), text values shaped like e-mail addresses are redacted before the
report reads them (`personal_data.py`), and a last scan of every written file for e-mail-like strings
refuses to keep a directory that still has one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pyarrow.parquet as pq

from reporting import charts, csv_safe, folder_swap, personal_data, section_alerts
from reporting.section_experiments import experiments_section
from transforms.build import MART_TABLES

# The analyst-facing marts, as the transforms build them.
MARTS = MART_TABLES

# Text columns that may be exported, per mart. Anything textual not named here stays in the warehouse:
# a new free-text column upstream must be reviewed before it can reach an inbox.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "conversion_catalog": (
        "conversion_name", "label", "display_name", "description", "source_system", "signal", "signal_type",
        "tier", "kind", "funnel_name", "step_name", "unit", "value_source",
    ),
    "web_sessions_daily": ("property_id", "channel", "device_category", "country", "visitor_type"),
    "conversions_daily": (
        "source_system", "source_id", "conversion_name", "tier", "kind", "channel", "device_category",
        "country", "visitor_type", "unit", "conversion_unit", "sessions_basis",
    ),
    "funnel_daily": ("funnel_name", "step_name", "tier", "unit", "count_unit", "source_system"),
    "channel_funnel_daily": ("channel",),
    "segment_summary": (
        "tier", "conversion_name", "segment_dimension", "segment_value", "unit", "source_system",
        "test_method", "gate_reason",
    ),
    "micro_macro_lift": (
        "micro_conversion", "basis", "macro_conversion", "unit", "source_system", "kind", "test_method",
        "gate_reason",
    ),
    "data_quality": ("run_id", "source", "source_id", "request", "mode"),
}  # fmt: skip
TEXT_COLUMNS.update(section_alerts.TEXT_COLUMNS)
TEXT_COLUMNS["micro_conversions_daily"] = TEXT_COLUMNS["conversions_daily"]
TEXT_COLUMNS["macro_conversions_daily"] = TEXT_COLUMNS["conversions_daily"]

# Non-text columns are aggregates (counts, rates, dates, flags) and pass, unless their name says they
# identify a person or a record tied to one.
IDENTIFYING_NAME = re.compile(r"(^id$|_ids?$|email|phone|name$|firstname|lastname|address|^ip)", re.I)
ALLOWED_ID_COLUMNS = {"property_id", "source_id", "run_id", "conversion_name", "step_name", "funnel_name"}
NUMERIC_TYPES = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
    r"FLOAT|DOUBLE|REAL|DECIMAL.*|BOOLEAN|DATE|TIMESTAMP.*)$"
)

EMAIL_PATTERN = personal_data.EMAIL_PATTERN

TREND_PERIODS = 4
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ExportError(RuntimeError):
    """The export cannot be written (missing marts, bad period, unsafe output)."""


class PersonalDataError(ExportError):
    """An export file contained something that looks like personal data; nothing was kept."""


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ExportError(f"period end {self.end} is before its start {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def is_iso_week(self) -> bool:
        return self.days == 7 and self.start.isoweekday() == 1

    @property
    def label(self) -> str:
        if self.is_iso_week:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def title(self) -> str:
        if self.start.year != self.end.year:
            return f"{self.start:%-d %b %Y} – {self.end:%-d %b %Y}"
        if self.start.month != self.end.month:
            return f"{self.start:%-d %b} – {self.end:%-d %b %Y}"
        return f"{self.start:%-d}–{self.end:%-d %b %Y}"

    def previous(self) -> Period:
        return Period(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))


@dataclass
class ExportResult:
    period: Period
    out_dir: Path
    files: list[Path]
    headline: dict[str, Any]
    sandbox: bool
    notes: list[str] = field(default_factory=list)
    # An e-mail-safe digest (tables and inline styles, no SVG: most mail clients drop inline SVG).
    email_html: str | None = field(default=None, repr=False)
    # Text values shaped like e-mail addresses that were redacted (table, column, counts; never the value).
    redactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def period_label(self) -> str:
        return self.period.label

    @property
    def report_path(self) -> Path:
        return self.out_dir / "summary.html"

    @property
    def data_source(self) -> str:
        return "sandbox" if self.sandbox else "ga4+hubspot"


# --- small SQL helpers ---------------------------------------------------------------------------


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {
        name: dtype
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    }


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ExportError(f"unexpected column name {name!r} in the marts")
    return f'"{name}"'


def _f(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or previous in (None, 0):
        return None
    return current / previous - 1


def humanise(name: str) -> str:
    """`add_to_cart` -> `Add to cart`; HubSpot stage ids get their usual names."""
    known = {
        "marketingqualifiedlead": "Marketing qualified lead",
        "salesqualifiedlead": "Sales qualified lead",
        "generate_lead": "Lead form",
        "view_item": "Product view",
        "begin_checkout": "Checkout started",
        "closedwon": "Deal won",
        "deal_won": "Deal won",
        "deal_closed_won": "Deal won",
        "lifecycle_lead": "Lead",
        "lifecycle_mql": "Marketing qualified lead",
        "lifecycle_sql": "Sales qualified lead",
        "lifecycle_opportunity": "Opportunity",
        "lifecycle_customer": "Customer",
        "lifecycle_subscriber": "Subscriber",
        "lifecycle_evangelist": "Evangelist",
        "crm": "CRM",
        "device_category": "Device",
        "visitor_type": "New vs returning",
        "new_vs_returning": "New vs returning",
        "original_source": "Original source (HubSpot)",
        "lifecycle_stage": "Lifecycle stage",
        "deals_won": "Deals won",
        "mqls": "MQLs",
        "sqls": "SQLs",
    }
    if name in known:
        return known[name]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


# --- what the export reads -----------------------------------------------------------------------


def check_marts(con: duckdb.DuckDBPyConnection) -> None:
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        ).fetchall()
    }
    missing = [m for m in MARTS if m not in present]
    if missing:
        raise ExportError(
            "the analyst file has no "
            + ", ".join(f"marts.{m}" for m in missing)
            + ": build and publish the marts first (e.g. `make demo` or materialise the marts in Dagster)"
        )


def default_period(
    con: duckdb.DuckDBPyConnection, period_end: dt.date | None = None, days: int = 7
) -> Period:
    """The last complete Monday–Sunday week in the marts, or the `days` ending on `period_end`."""
    if days < 1:
        raise ExportError(f"period length must be at least one day, got {days}")
    if period_end is None:
        (last,) = con.execute("SELECT max(date) FROM marts.web_sessions_daily").fetchall()[0]
        if last is None:
            raise ExportError("marts.web_sessions_daily is empty: there is no period to report on")
        if days == 7:
            # A weekly report covers whole ISO weeks; a week with data missing at its end waits.
            last = last - dt.timedelta(days=(last.isoweekday() % 7))
        period_end = last
    return Period(period_end - dt.timedelta(days=days - 1), period_end)


def detect_sandbox(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the analyst file was built from the built-in sandbox (its ids are fixed)."""
    cols = _columns(con, "data_quality")
    for flag in ("data_source", "sandbox"):
        if flag in cols:
            rows = con.execute(f"SELECT DISTINCT {_ident(flag)}::VARCHAR FROM marts.data_quality").fetchall()
            values = {str(r[0]).lower() for r in rows if r[0] is not None}
            if values:
                return bool(values & {"sandbox", "true"})
    ids: set[str] = set()
    if "source_id" in cols:
        ids |= {r[0] for r in con.execute("SELECT DISTINCT source_id FROM marts.data_quality").fetchall()}
    if "source_id" in _columns(con, "conversions_daily"):
        ids |= {
            r[0] for r in con.execute("SELECT DISTINCT source_id FROM marts.conversions_daily").fetchall()
        }
    return "sandbox" in ids


def _date_filter(cols: dict[str, str]) -> tuple[str, list[str]] | None:
    if "date" in cols:
        return "date BETWEEN $start AND $end", ["date"]
    if "start_date" in cols and "end_date" in cols:
        return "start_date <= $end AND end_date >= $start", ["start_date", "end_date"]
    if "window_start" in cols and "window_end" in cols:
        return "window_start = $window_start AND window_end = $window_end", []
    return None


def _segment_window(
    con: duckdb.DuckDBPyConnection, table: str, period: Period
) -> tuple[dt.date, dt.date] | None:
    """The statistics window to report: the latest one ending by the period's end, else the latest."""
    cols = _columns(con, table)
    if not {"window_start", "window_end"} <= cols.keys():
        return None
    rows = con.execute(
        f"""SELECT window_start, window_end FROM (SELECT DISTINCT window_start, window_end FROM marts.{table})
            ORDER BY (window_end <= $end) DESC, window_end DESC, window_start ASC LIMIT 1""",
        {"end": period.end},
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def _headline(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    prev = period.previous()
    params = {"s": period.start, "e": period.end, "ps": prev.start, "pe": prev.end}
    web = _rows(
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
        for r in _rows(
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
        v, p = _f(value) or 0.0, _f(previous) or 0.0
        return {
            "key": key,
            "label": label,
            "value": v,
            "previous": p,
            "change": _change(v, p),
            "kind": kind,
            "tier": tier,
            "note": note,
        }

    micro, macro = tiers.get("micro", {}), tiers.get("macro", {})
    sessions, prev_sessions = _f(web["sessions"]) or 0.0, _f(web["prev_sessions"]) or 0.0

    def rate(n: Any, d: float) -> float:
        return (_f(n) or 0.0) / d if d else 0.0

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


def _conversion_table(con: duckdb.DuckDBPyConnection, period: Period) -> list[dict]:
    prev = period.previous()
    cat_cols = _columns(con, "conversion_catalog")
    label_col = next((c for c in ("label", "display_name") if c in cat_cols), None)
    rows = _rows(
        con,
        f"""WITH c AS (
              SELECT conversion_name,
                     sum(conversions) FILTER (WHERE date BETWEEN $s AND $e) AS conversions,
                     sum(conversions) FILTER (WHERE date BETWEEN $ps AND $pe) AS prev_conversions,
                     sum(value) FILTER (WHERE date BETWEEN $s AND $e) AS value
              FROM marts.conversions_daily WHERE date BETWEEN $ps AND $e GROUP BY conversion_name)
            SELECT k.conversion_name, k.source_system, k.tier, k.kind, k.funnel_name, k.funnel_step,
                   {f"k.{_ident(label_col)}" if label_col else "NULL"} AS label,
                   coalesce(c.conversions, 0) AS conversions, coalesce(c.prev_conversions, 0) AS prev_conversions,
                   coalesce(c.value, 0) AS value
            FROM marts.conversion_catalog k LEFT JOIN c USING (conversion_name)
            ORDER BY CASE k.tier WHEN 'macro' THEN 0 ELSE 1 END, k.funnel_name NULLS LAST, k.funnel_step,
                     conversions DESC, k.conversion_name""",
        {"s": period.start, "e": period.end, "ps": prev.start, "pe": prev.end},
    )
    for r in rows:
        r["label"] = r["label"] or humanise(r["conversion_name"])
        r["change"] = _change(_f(r["conversions"]), _f(r["prev_conversions"]))
        r["sparkbar"] = charts.delta_sparkbar(
            _f(r["conversions"]) or 0, _f(r["prev_conversions"]) or 0, r["tier"]
        )
    return rows


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


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def cohort_funnels(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The funnels of `marts.funnel_daily` whose rows are creation cohorts (HubSpot), not daily events."""
    cols = _columns(con, "funnel_daily")
    if "count_unit" in cols:
        where = "count_unit LIKE 'contacts (cohort%'"
    elif "source_system" in cols:
        where = "source_system = 'hubspot'"
    else:
        return set()
    return {
        r[0]
        for r in con.execute(f"SELECT DISTINCT funnel_name FROM marts.funnel_daily WHERE {where}").fetchall()
    }


def _lag_setting(value: int | str | None) -> int | None:
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
    if not funnels or not all(_has_table(con, "staging", t) for t in needed):
        return default
    if not {"signal", "signal_type", "funnel_step"} <= _columns(con, "conversion_catalog").keys():
        return default
    rows = _rows(
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


def _funnels(
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
        steps = _rows(
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
                count=_f(s["count"]) or 0.0,
                rate_from_previous=_f(s["rate_from_previous"]),
                rate_from_first=_f(s["rate_from_first"]),
                drop_off=_f(s["drop_off"]),
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
                "basis": _funnel_basis(period, window),
                "steps": fsteps,
                "leak": leak,
                "leak_from": leak_from,
                "overall": fsteps[-1].rate_from_first if fsteps else None,
                "chart": charts.funnel_chart(name, title, fsteps, highlight_worst=readable),
            }
        )
    return out


def _funnel_basis(period: Period, window: CohortWindow | None) -> str:
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


def _trends(con: duckdb.DuckDBPyConnection, period: Period, catalog: list[dict]) -> dict[str, list[dict]]:
    window_start = period.end - dt.timedelta(days=period.days * TREND_PERIODS - 1)
    # Days before the marts begin are unknown, not zero: the lines start where the data does.
    (first_day,) = con.execute("SELECT min(date) FROM marts.web_sessions_daily").fetchall()[0]
    if first_day is not None and first_day > window_start:
        window_start = min(first_day, period.start)
    rows = _rows(
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


DIMENSION_PHRASES = {
    "channel": "{v} visitors",
    "device_category": "visitors on {v}",
    "country": "visitors from {v}",
    "visitor_type": "{v} visitors",
    "new_vs_returning": "{v} visitors",
    "landing_page": "sessions landing on {v}",
    "campaign": "visitors from the “{v}” campaign",
    "lifecycle_stage": "contacts in the {v} stage",
    "original_source": "contacts first from {v}",
}


def segment_phrase(dimension: str, value: str) -> str:
    template = DIMENSION_PHRASES.get(dimension, humanise(dimension) + " = {v}")
    return template.format(v=value)


def _fmt_times(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _fmt_q(q: float | None) -> str:
    if q is None:
        return "not tested"
    return "q < 0.001" if q < 0.001 else f"q = {q:.3f}"


def _lift_sentence(
    subject: str,
    lift: float | None,
    low: float | None,
    high: float | None,
    q: float | None,
    verb: str,
    rest: str,
) -> str:
    if lift is None:
        return f"{subject}: too few to test."
    if lift >= 1:
        size = (
            f"{lift:.1f}× as often as {rest}"
            if lift >= 1.5
            else f"{(lift - 1) * 100:.0f} % more often than {rest}"
        )
    else:
        size = f"{(1 - lift) * 100:.0f} % less often than {rest}"
    return f"{subject} {verb} {size} (95 % interval {_fmt_times(low)}–{_fmt_times(high)}, {_fmt_q(q)})."


def _segment_family(con: duckdb.DuckDBPyConnection, window: tuple[dt.date, dt.date]) -> dict[str, Any] | None:
    """The conversion whose segment ranking leads the section: the web macro conversion with the most
    tested segments (GA4 purchases in the default catalog), else any family that was tested."""
    cols = _columns(con, "segment_summary")
    source = "source_system" if "source_system" in cols else "NULL"
    picked = _rows(
        con,
        f"""SELECT * FROM (
              SELECT {source} AS source_system, tier, conversion_name, count(rank) AS ranked,
                     sum(conversions) AS n
              FROM marts.segment_summary WHERE window_start = $ws AND window_end = $we
              GROUP BY ALL)
            ORDER BY (ranked > 0) DESC, (tier = 'macro') DESC, (source_system = 'ga4') DESC,
                     (conversion_name = 'all') DESC, ranked DESC, n DESC, conversion_name LIMIT 1""",
        {"ws": window[0], "we": window[1]},
    )
    return picked[0] if picked else None


def _segments(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    window = _segment_window(con, "segment_summary", period)
    family = _segment_family(con, window) if window else None
    if window is None or family is None:
        return {"window": None, "rows": [], "sentences": [], "null_dims": [], "panels": [], "table": []}
    cols = _columns(con, "segment_summary")
    has_source = "source_system" in cols
    unit_col = "unit" if "unit" in cols else "NULL"
    gate_col = "gate_reason" if "gate_reason" in cols else "NULL"
    rows = _rows(
        con,
        f"""SELECT segment_dimension, segment_value, {unit_col} AS unit, units, conversions, rate,
                   rate_ci_low, rate_ci_high, rest_rate, lift, lift_ci_low, lift_ci_high, p_value, q_value,
                   significant, rank, {gate_col} AS gate_reason
            FROM marts.segment_summary
            WHERE window_start = $ws AND window_end = $we AND tier = $tier AND conversion_name = $conv
              {"AND source_system IS NOT DISTINCT FROM $src" if has_source else ""}
            ORDER BY segment_dimension, rank NULLS LAST, lift_ci_low DESC NULLS LAST, segment_value""",
        {
            "ws": window[0],
            "we": window[1],
            "tier": family["tier"],
            "conv": family["conversion_name"],
            **({"src": family["source_system"]} if has_source else {}),
        },
    )
    for r in rows:
        r["significant"] = bool(r["significant"])
        r["phrase"] = segment_phrase(r["segment_dimension"], str(r["segment_value"]))
        lift = _f(r["lift"])
        r["direction"] = (
            "up" if r["significant"] and (lift or 0) >= 1 else "down" if r["significant"] else "none"
        )
    tested = [r for r in rows if r["rank"] is not None and r["lift"] is not None]
    untested = [r for r in rows if r not in tested]
    # Most receptive first: the lower end of the lift interval (the marts rank within a dimension by it).
    overall = sorted(
        tested,
        key=lambda r: (-(_f(r["lift_ci_low"]) or 0.0), r["segment_dimension"], str(r["segment_value"])),
    )
    positives = [r for r in overall if r["direction"] == "up"]
    negatives = sorted((r for r in tested if r["direction"] == "down"), key=lambda r: _f(r["lift"]) or 0.0)
    conversion = family["conversion_name"]
    what = "convert" if conversion == "all" else f"reach {humanise(conversion).lower()}"
    if conversion == "purchase":
        what = "purchase"
    sentences = [
        _lift_sentence(
            r["phrase"][:1].upper() + r["phrase"][1:],
            _f(r["lift"]),
            _f(r["lift_ci_low"]),
            _f(r["lift_ci_high"]),
            _f(r["q_value"]),
            what,
            "the rest",
        )
        for r in positives[:4] + negatives[:3]
    ]
    dims = list(dict.fromkeys(r["segment_dimension"] for r in overall))
    null_dims = [d for d in dims if not any(r["significant"] for r in tested if r["segment_dimension"] == d)]
    order = {
        d: i
        for i, d in enumerate(
            [
                "channel",
                "device_category",
                "country",
                "visitor_type",
                "new_vs_returning",
                "campaign",
                "landing_page",
                "lifecycle_stage",
                "original_source",
            ]
        )
    }
    panels = []
    for dim in sorted(dims, key=lambda d: (order.get(d, 99), d)):
        family_rows = sorted((r for r in tested if r["segment_dimension"] == dim), key=lambda r: r["rank"])
        shown = family_rows
        if len(family_rows) > 8:
            # Long families (pages, campaigns): the top, every significant row, and the bottom two.
            shown = family_rows[:5] + [r for r in family_rows[5:-2] if r["significant"]] + family_rows[-2:]
        panels.append(
            {
                "dimension": dim,
                "title": humanise(dim),
                "unit": next((r["unit"] for r in family_rows if r["unit"]), None),
                "hidden": len(family_rows) - len(shown),
                "rows": [
                    charts.IntervalRow(
                        key=f"{r['segment_dimension']}={r['segment_value']}",
                        label=str(r["segment_value"]),
                        sublabel="",
                        estimate=_f(r["lift"]),
                        low=_f(r["lift_ci_low"]),
                        high=_f(r["lift_ci_high"]),
                        significant=r["significant"],
                        q_value=_f(r["q_value"]),
                    )
                    for r in shown
                ],
            }
        )
    domain = charts.shared_domain([row for p in panels for row in p["rows"]])
    for p in panels:
        p["chart"] = charts.interval_chart(
            "segment-lift",
            f"{p['title']}: lift against the rest, 95 % interval",
            p["rows"],
            dimension=p["dimension"],
            domain=domain,
        )
    # The table: every significant segment and the ten most receptive, most receptive first.
    table = [r for i, r in enumerate(overall) if i < 10 or r["significant"]]
    units = sorted({str(r["unit"]) for r in tested if r["unit"]})
    return {
        "window": window,
        "tier": family["tier"],
        "conversion": conversion,
        "source_system": family.get("source_system"),
        "conversion_label": "any macro conversion" if conversion == "all" else humanise(conversion).lower(),
        "rows": tested,
        "table": table,
        "untested": untested,
        "sentences": sentences,
        "null_dims": [humanise(d).lower() for d in null_dims],
        "panels": panels,
        "units": units,
    }


# Associations, never causes: each sentence names the unit and what was compared (issue 11).
MICRO_MACRO_BASIS = {
    "contact": ("HubSpot contacts", "Contacts with “{m}” before any macro conversion", "other contacts"),
    "contacts": ("HubSpot contacts", "Contacts with “{m}” before any macro conversion", "other contacts"),
    "segment_day": (
        "GA4 day × segment cells (co-occurrence)",
        "Users of day × segment cells where “{m}” occurred",
        "users of the same segments' cells without it",
    ),
    "session": ("GA4 sessions", "Sessions with “{m}”", "sessions without it"),
    "sessions": ("GA4 sessions", "Sessions with “{m}”", "sessions without it"),
}


def _micro_macro(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    cols = _columns(con, "micro_macro_lift")
    window = _segment_window(con, "micro_macro_lift", period)
    where, params = "", {}
    if window is not None:
        where, params = "WHERE window_start = $ws AND window_end = $we", {"ws": window[0], "we": window[1]}

    def col(name: str, default: str = "NULL") -> str:
        return _ident(name) if name in cols else default

    rows = _rows(
        con,
        f"""SELECT micro_conversion, basis, {col("macro_conversion")} AS macro_conversion, {col("unit")} AS unit,
                   did_count, did_macro_rate, did_not_count, did_not_macro_rate, lift, lift_ci_low, lift_ci_high,
                   p_value, q_value, {col("significant", "q_value < 0.05")} AS significant, rank,
                   {col("gate_reason")} AS gate_reason
            FROM marts.micro_macro_lift {where}
            ORDER BY rank IS NULL, lift_ci_low DESC NULLS LAST, basis, micro_conversion""",
        params,
    )
    for r in rows:
        r["significant"] = bool(r["significant"])
        r["label"] = humanise(str(r["micro_conversion"]))
        basis = MICRO_MACRO_BASIS.get(
            str(r["basis"]), (str(r["basis"]), "Units with “{m}”", "units without it")
        )
        r["basis_label"] = basis[0]
        r["goal"] = (
            "a macro conversion"
            if r["macro_conversion"] in (None, "all")
            else humanise(str(r["macro_conversion"])).lower()
        )
        lift = _f(r["lift"])
        r["direction"] = (
            "up" if r["significant"] and (lift or 0) >= 1 else "down" if r["significant"] else "none"
        )
        r["subject"] = basis[1].format(m=r["label"])
        r["rest"] = basis[2]
    tested = [r for r in rows if r["rank"] is not None and r["lift"] is not None]
    untested = [r for r in rows if r not in tested]
    sentences = []
    for r in [r for r in tested if r["direction"] == "up"] + [r for r in tested if r["direction"] == "down"]:
        verb = "purchase" if r["goal"] == "purchase" else f"reach {r['goal']}"
        sentences.append(
            _lift_sentence(
                r["subject"],
                _f(r["lift"]),
                _f(r["lift_ci_low"]),
                _f(r["lift_ci_high"]),
                _f(r["q_value"]),
                verb,
                r["rest"],
            )
        )
    chart = (
        charts.interval_chart(
            "micro-macro-lift",
            "Association: how much more often units with a micro conversion reached a macro conversion",
            [
                charts.IntervalRow(
                    key=f"{r['basis']}:{r['micro_conversion']}",
                    label=r["label"],
                    sublabel=f"→ {r['goal']}",
                    estimate=_f(r["lift"]),
                    low=_f(r["lift_ci_low"]),
                    high=_f(r["lift_ci_high"]),
                    significant=r["significant"],
                    q_value=_f(r["q_value"]),
                )
                for r in tested
            ],
            reference_label="same as units without it",
        )
        if tested
        else None
    )
    not_leading = [r["label"] for r in tested if r["direction"] == "none"]
    gated: dict[str, list[str]] = {}
    for r in untested:
        gated.setdefault(str(r["gate_reason"] or "not tested"), []).append(r["label"])
    return {
        "rows": tested,
        "untested": untested,
        "gated": gated,
        "sentences": sentences[:5],
        "chart": chart,
        "window": window,
        "not_leading": not_leading,
    }


CHANNEL_STAGES = (
    # (column, header, side): web columns come from GA4, CRM columns from HubSpot.
    ("sessions", "Sessions", "web"),
    ("micro_conversions", "Micro conv.", "web"),
    ("web_macro_conversions", "Purchases", "web"),
    ("web_revenue", "Web revenue", "web"),
    ("leads", "Leads", "web"),
    ("contacts_created", "Contacts", "crm"),
    ("mqls", "MQLs", "crm"),
    ("sqls", "SQLs", "crm"),
    ("opportunities", "Opps", "crm"),
    ("customers", "Customers", "crm"),
    ("deals_won", "Deals won", "crm"),
    ("revenue", "Deal revenue", "crm"),
)


def _channel_funnel(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    cols = _columns(con, "channel_funnel_daily")
    stages = [(c, label) for c, label, _ in CHANNEL_STAGES if c in cols]
    sides = {c: side for c, _, side in CHANNEL_STAGES}
    select = ", ".join(f"sum({_ident(c)}) AS {_ident(c)}" for c, _ in stages)
    rows = _rows(
        con,
        f"""SELECT channel, {select} FROM marts.channel_funnel_daily WHERE date BETWEEN $s AND $e
            GROUP BY channel ORDER BY sessions DESC NULLS LAST, channel""",
        {"s": period.start, "e": period.end},
    )
    totals = {c: sum(_f(r[c]) or 0.0 for r in rows) for c, _ in stages}
    maxima = {c: max((_f(r[c]) or 0.0 for r in rows), default=0.0) for c, _ in stages}
    for r in rows:
        sessions = _f(r.get("sessions")) or 0.0
        customers = _f(r.get("customers")) or 0.0
        leads = _f(r.get("leads")) or 0.0
        r["customers_per_1000"] = 1000 * customers / sessions if sessions else None
        r["lead_to_customer"] = customers / leads if leads else None
        r["shade"] = {c: ((_f(r[c]) or 0.0) / maxima[c] if maxima[c] else 0.0) for c, _ in stages}
    for r in rows:
        sessions = _f(r.get("sessions")) or 0.0
        r["leads_per_1000"] = (
            1000 * (_f(r.get("leads")) or 0.0) / sessions if sessions and "leads" in r else None
        )
    bars = sorted((r for r in rows if r["leads_per_1000"] is not None), key=lambda r: -r["leads_per_1000"])
    chart = (
        charts.bar_chart(
            "channel-leads",
            "Leads per 1,000 sessions by channel",
            [
                charts.Bar(
                    key=r["channel"],
                    label=r["channel"],
                    value=r["leads_per_1000"],
                    display=f"{r['leads_per_1000']:.1f}",
                )
                for r in bars
            ],
            colour=charts.MICRO,
        )
        if bars
        else None
    )
    web = sum(1 for c, _ in stages if sides[c] == "web")
    return {
        "stages": stages,
        "rows": rows,
        "totals": totals,
        "chart": chart,
        "web_columns": web,
        "crm_columns": len(stages) - web,
        "money": {"revenue", "web_revenue"},
    }


def _data_quality(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    sandbox: bool,
    data_end: dt.date | None,
    funnels: list[dict],
) -> dict[str, Any]:
    cols = _columns(con, "data_quality")
    filt = _date_filter(cols)
    where = f"WHERE {filt[0]}" if filt and filt[1] else ""
    params = {"start": period.start, "end": period.end} if where else {}

    def has(c: str) -> bool:
        return c in cols

    def total(c: str) -> str:
        return f"sum({_ident(c)})::DOUBLE" if has(c) else "NULL"

    def count_flag(c: str) -> str:
        return f"count(*) FILTER (WHERE {_ident(c)})" if has(c) else "NULL"

    summary = _rows(
        con,
        f"""SELECT count(*) AS log_rows, {total("requests")} AS requests, {total("rows")} AS data_rows,
                   {total("retries")} AS retries, {total("http_429")} AS http_429,
                   {total("quota_tokens_used")} AS quota_tokens_used,
                   {count_flag("subject_to_thresholding")} AS thresholded,
                   {count_flag("data_loss_from_other_row")} AS other_row,
                   {count_flag("sampled")} AS sampled,
                   {"count(*) FILTER (WHERE error IS NOT NULL AND error <> '')" if has("error") else "NULL"} AS errors
            FROM marts.data_quality {where}""",
        params,
    )[0]

    # Days are read from the daily marts' own flags when they carry them (exact per day); otherwise
    # from the request log, where a request over several days flags each day it covers.
    flagged_tables = {table: _columns(con, table) for table in ("web_sessions_daily", "conversions_daily")}

    def flagged_days(flag: str) -> list[str]:
        by_day: dict[dt.date, set[str]] = {}
        sources = [t for t, c in flagged_tables.items() if flag in c and "date" in c]
        for table in sources:
            for (day,) in con.execute(
                f"SELECT DISTINCT date FROM marts.{table} WHERE {_ident(flag)} AND date BETWEEN ? AND ?",
                [period.start, period.end],
            ).fetchall():
                by_day.setdefault(day, set()).add(table.replace("_daily", "").replace("_", " "))
        if not sources and has(flag) and has("start_date") and has("end_date"):
            req = "request" if has("request") else "'request'"
            for day, request in con.execute(
                f"""SELECT DISTINCT g.d::DATE, {req} FROM marts.data_quality,
                      generate_series(greatest(start_date, $start)::DATE, least(end_date, $end)::DATE,
                                      INTERVAL 1 DAY) g(d)
                    WHERE {_ident(flag)} AND start_date <= $end AND end_date >= $start""",
                {"start": period.start, "end": period.end},
            ).fetchall():
                by_day.setdefault(day, set()).add(str(request))
        return [f"{d:%a %-d %b} ({', '.join(sorted(names))})" for d, names in sorted(by_day.items())]

    notes: list[dict[str, str]] = []
    if sandbox:
        notes.append(
            {
                "kind": "sandbox",
                "level": "warn",
                "text": "Sandbox data: these numbers come from Stepwise's built-in synthetic store, not from a "
                "real GA4 property or HubSpot portal. Set the GA4 and HubSpot credentials to report on "
                "real traffic.",
            }
        )
    thresholded = flagged_days("subject_to_thresholding")
    other_row = flagged_days("data_loss_from_other_row")
    sampled = flagged_days("sampled")
    if thresholded:
        notes.append(
            {
                "kind": "thresholding",
                "level": "warn",
                "text": "GA4 applied thresholding (rows withheld to protect user privacy) on "
                + "; ".join(thresholded)
                + ". Counts for small segments on these days are lower than the truth.",
            }
        )
    if other_row:
        notes.append(
            {
                "kind": "other-row",
                "level": "warn",
                "text": "GA4 folded rare values into an “(other)” row on "
                + "; ".join(other_row)
                + ". Totals are right; the split by segment lumps some values together.",
            }
        )
    if sampled:
        notes.append(
            {
                "kind": "sampled",
                "level": "warn",
                "text": "GA4 returned sampled data on " + "; ".join(sampled) + ".",
            }
        )
    if data_end is not None and data_end < period.end:
        notes.append(
            {
                "kind": "stale",
                "level": "warn",
                "text": f"The marts end on {data_end:%a %-d %b %Y}, before the end of this period: "
                "the last days are missing, not zero.",
            }
        )
    if summary["errors"]:
        notes.append(
            {
                "kind": "errors",
                "level": "warn",
                "text": f"{int(summary['errors'])} API request group(s) in this period ended with an error; "
                "see marts.data_quality.",
            }
        )
    if not [n for n in notes if n["kind"] not in ("sandbox",)]:
        notes.append(
            {
                "kind": "clean",
                "level": "ok",
                "text": "No thresholding, “(other)” rows or sampling were reported for this period.",
            }
        )
    for f in funnels:
        for s in f["steps"][1:]:
            if s.rate_from_previous is not None and s.rate_from_previous > 1:
                notes.append(
                    {
                        "kind": "funnel-order",
                        "level": "info",
                        "text": f"In the {_lower_title(f['title'])}, more events were counted at “{s.label}” than at the "
                        "step before: some reach it by another path, so that step's drop-off is shown as negative.",
                    }
                )
    return {
        "summary": summary,
        "notes": notes,
        "thresholded_days": len(thresholded),
        "other_row_days": len(other_row),
        "sampled_days": len(sampled),
    }


# --- writing -------------------------------------------------------------------------------------


def _export_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    allowed_text = set(TEXT_COLUMNS.get(table, ()))
    out = []
    for name, dtype in _columns(con, table).items():
        if name.startswith("_"):
            continue
        if (
            name in allowed_text
            or (NUMERIC_TYPES.match(dtype.upper()) and not IDENTIFYING_NAME.search(name))
            or name in ALLOWED_ID_COLUMNS
        ):
            out.append(name)
    try:
        personal_data.check_export_columns(table, out)
    except personal_data.PersonalColumnError as exc:
        raise PersonalDataError(str(exc)) from None
    return out


def _copy_mart(
    con: duckdb.DuckDBPyConnection,
    table: str,
    period: Period,
    out_dir: Path,
    segment_windows: dict[str, tuple[dt.date, dt.date] | None],
) -> list[Path]:
    cols = _export_columns(con, table)
    if not cols:
        return []
    all_cols = _columns(con, table)
    filt = _date_filter(all_cols)
    where, params = "", {}
    if filt is not None:
        if filt[1]:
            where, params = f"WHERE {filt[0]}", {"start": period.start, "end": period.end}
        elif segment_windows.get(table) is not None:
            ws, we = segment_windows[table]  # type: ignore[misc]
            where, params = f"WHERE {filt[0]}", {"window_start": ws, "window_end": we}
    order = ", ".join(_ident(c) for c in cols[:4])
    query = f"SELECT {', '.join(_ident(c) for c in cols)} FROM marts.{_ident(table)} {where} ORDER BY {order}"
    # CSV text cells are made formula-safe (csv_safe); Parquet keeps the marts' values as they are.
    csv_path = csv_safe.write_csv(con, query, params, out_dir / f"{table}.csv", cols, all_cols)
    parquet_path = out_dir / f"{table}.parquet"
    literal = str(parquet_path).replace("'", "''")
    con.execute(f"COPY ({query}) TO '{literal}' (FORMAT parquet, COMPRESSION zstd)", params)
    return [csv_path, parquet_path]


def _text_of(path: Path) -> Iterable[str]:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        yield " ".join(table.column_names)
        for column in table.columns:
            if column.type in ("string", "large_string") or str(column.type) in ("string", "large_string"):
                yield "\n".join(v for v in column.to_pylist() if v is not None)
    else:
        yield path.read_text(encoding="utf-8", errors="replace")


def find_personal_data(paths: Iterable[Path]) -> list[str]:
    """E-mail-like strings in the given files (text, HTML, CSV, and Parquet string columns)."""
    hits = []
    for path in paths:
        for text in _text_of(path):
            for match in EMAIL_PATTERN.finditer(text):
                hits.append(f"{path.name}: {match.group(0)[:3]}…")
    return hits


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["int"] = charts.fmt_int
    env.filters["pct"] = charts.fmt_pct
    env.filters["money"] = lambda v: "–" if v is None else f"${v:,.0f}"
    env.filters["kmoney"] = _kmoney
    env.filters["signed_pct"] = lambda v: (
        "–" if v is None else f"{'+' if v >= 0 else '−'}{abs(v) * 100:.1f} %"
    )
    env.filters["times"] = _fmt_times
    env.filters["q"] = _fmt_q
    env.filters["num"] = lambda v, d=3: (
        "" if v is None else f"{float(v):.{d}g}" if isinstance(v, float) else str(v)
    )
    env.filters["raw"] = lambda v: "" if v is None else repr(float(v)) if isinstance(v, float) else str(v)
    env.filters["human"] = humanise
    env.filters["metric_value"] = _metric_value
    return env


def _kmoney(v: float | None) -> str:
    if v is None:
        return "–"
    v = float(v)
    if abs(v) >= 1_000_000:
        return f"${v / 1_000_000:.2f}M"
    if abs(v) >= 10_000:
        return f"${v / 1000:.1f}k"
    return f"${v:,.0f}"


def _metric_value(metric: dict, which: str = "value") -> str:
    v = metric[which]
    if metric["kind"] == "rate":
        return charts.fmt_pct(v, 2)
    if metric["kind"] == "money":
        return f"${v:,.0f}"
    return charts.fmt_int(v)


def _lower_title(title: str) -> str:
    first, _, rest = title.partition(" ")
    return (first if first.isupper() else first.lower()) + (" " + rest if rest else "")


def _findings(headline: dict, funnels: list[dict], segments: dict, micro_macro: dict) -> list[str]:
    out = []
    macro = headline["macro_conversions"]
    if macro["change"] is not None:
        direction = "up" if macro["change"] >= 0 else "down"
        out.append(
            f"Macro conversions {direction} {abs(macro['change']) * 100:.1f} % on the previous period "
            f"({charts.fmt_int(macro['value'])} vs {charts.fmt_int(macro['previous'])})."
        )
    for f in funnels:
        # _funnels leaves `leak` empty for a cohort too young to read, so no leak is claimed from one.
        if f["leak"] is None or f["leak"].drop_off is None or f["leak_from"] is None:
            continue
        drop = charts.fmt_pct(f["leak"].drop_off)
        window = f["window"]
        if window is not None:
            out.append(
                f"Biggest leak in the {_lower_title(f['title'])}, for contacts created {window.title} "
                f"(cohorts at least {window.lag_days} days old): {drop} of those who reached "
                f"“{f['leak_from'].label}” have not reached “{f['leak'].label}”."
            )
        else:
            out.append(
                f"Biggest leak in the {_lower_title(f['title'])} this week: {drop} fewer events at "
                f"“{f['leak'].label}” than at “{f['leak_from'].label}” (GA4 event counts)."
            )
    if segments.get("sentences"):
        out.append(segments["sentences"][0])
    if micro_macro.get("sentences"):
        out.append(micro_macro["sentences"][0])
    return out


def build_summary(
    con: duckdb.DuckDBPyConnection,
    period_start: dt.date,
    period_end: dt.date,
    out_dir: Path | str,
    *,
    sandbox: bool,
    crm_cohort_lag_days: int | str | None = None,
    redactions: Sequence[personal_data.Redaction] = (),
) -> ExportResult:
    """Write summary.html and CSV/Parquet of the summary marts for one period into `out_dir`.

    `con` is a read-only connection to the analyst file. `out_dir` is replaced as a whole.
    `crm_cohort_lag_days`: how old a contact cohort must be before its CRM funnel is reported (the
    `STEPWISE_CRM_COHORT_LAG_DAYS` setting, passed in by the export asset; unset: measured from the
    stage history, else 28).
    """
    period = Period(period_start, period_end)
    lag_setting = _lag_setting(crm_cohort_lag_days)
    out_dir = Path(out_dir)
    check_marts(con)
    catalog_tiers = {
        r[0]: r[1]
        for r in con.execute("SELECT conversion_name, tier FROM marts.conversion_catalog").fetchall()
    }
    (data_end,) = con.execute("SELECT max(date) FROM marts.web_sessions_daily").fetchall()[0]
    headline = _headline(con, period)
    conversions = _conversion_table(con, period)
    funnels = _funnels(con, period, catalog_tiers, lag_setting)
    trends = _trends(con, period, conversions)
    segments = _segments(con, period)
    micro_macro = _micro_macro(con, period)
    channel = _channel_funnel(con, period)
    alerts = section_alerts.alerts_section(con, period)
    ttc = section_alerts.time_to_convert_section(con)
    quality = _data_quality(con, period, sandbox, data_end, funnels)
    redaction_note = personal_data.data_quality_note(list(redactions))
    if redaction_note is not None:
        quality["notes"].append(redaction_note)
    findings = _findings(headline, funnels, segments, micro_macro)
    generated_at = dt.datetime.now(dt.UTC).replace(microsecond=0)

    context = {
        "period": period,
        "previous": period.previous(),
        "sandbox": sandbox,
        "headline": headline,
        "findings": findings,
        "conversions": conversions,
        "funnels": funnels,
        "trends": trends,
        "segments": segments,
        "micro_macro": micro_macro,
        "channel": channel,
        "alerts": alerts,
        "ttc": ttc,
        "quality": quality,
        "generated_at": generated_at,
        "marts": MARTS,
        "experiments": experiments_section(con),
    }
    env = _environment()
    html = env.get_template("summary.html.j2").render(**context)
    email_html = env.get_template("email.html.j2").render(**context)

    # A new version folder (umask permissions), made live by an atomic symlink flip (folder_swap).
    staging = folder_swap.new_version_dir(out_dir)
    try:
        (staging / "summary.html").write_text(html, encoding="utf-8")
        windows = {t: _segment_window(con, t, period) for t in ("segment_summary", "micro_macro_lift")}
        files = [staging / "summary.html"]
        for table in MARTS:
            files += _copy_mart(con, table, period, staging, windows)
        headline_out = headline_summary(period, headline, findings, sandbox, quality)
        manifest = {
            "period": period.label,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "data_source": "sandbox" if sandbox else "ga4+hubspot",
            "generated_at": generated_at.isoformat(),
            "headline": headline_out,
            "files": sorted(p.name for p in files) + ["manifest.json"],
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        files.append(staging / "manifest.json")
        hits = find_personal_data(files)
        hits += [f"e-mail body: {m.group(0)[:3]}…" for m in EMAIL_PATTERN.finditer(email_html)]
        if hits:
            raise PersonalDataError(
                f"refusing to write the {period.label} export: {len(hits)} e-mail-like string(s) found "
                f"({'; '.join(hits[:5])}); nothing was kept"
            )
    except BaseException:
        folder_swap.discard(staging)
        raise
    folder_swap.publish(staging, out_dir)
    final_files = [out_dir / p.name for p in files]
    return ExportResult(
        period=period,
        out_dir=out_dir,
        files=final_files,
        headline=headline_out,
        sandbox=sandbox,
        notes=[n["text"] for n in quality["notes"]],
        email_html=email_html,
        redactions=[r.as_dict() for r in redactions],
    )


def _tidy(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def headline_summary(
    period: Period, headline: dict, findings: list[str], sandbox: bool, quality: dict
) -> dict[str, Any]:
    """Plain numbers for metadata, Slack and the manifest."""
    out: dict[str, Any] = {
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "data_source": "sandbox" if sandbox else "ga4+hubspot",
    }
    for key, m in headline.items():
        # Sums of DOUBLE money carry float noise (13525.4299…); plain numbers travel rounded.
        out[key] = _tidy(m["value"])
        out[f"{key}_previous"] = _tidy(m["previous"])
        out[f"{key}_change"] = _tidy(m["change"])
    out["findings"] = findings
    out["thresholded_days"] = quality["thresholded_days"]
    out["other_row_days"] = quality["other_row_days"]
    return out


def run_export(
    analyst_path: Path | str,
    out_root: Path | str = "data/exports",
    period_end: dt.date | str | None = None,
    *,
    period_days: int = 7,
    sandbox: bool | None = None,
    crm_cohort_lag_days: int | str | None = None,
) -> ExportResult:
    """Open the analyst file read-only, pick the period, and write its export under `out_root/<label>/`."""
    analyst_path = Path(analyst_path)
    if not analyst_path.is_file():
        raise ExportError(
            f"analyst file {analyst_path} does not exist: run the pipeline and publish first "
            "(`make demo`), or set STEPWISE_ANALYST_DB to the published file"
        )
    # A bad setting fails before the analyst file is opened.
    lag_setting = _lag_setting(crm_cohort_lag_days)
    if isinstance(period_end, str):
        try:
            period_end = dt.date.fromisoformat(period_end)
        except ValueError as exc:
            raise ExportError(f"period_end {period_end!r} is not a date; use YYYY-MM-DD") from exc
    if analyst_path.stem.lower() in ("marts", "main", "system", "temp"):
        # A file named like a schema makes `marts.x` ambiguous; attach it under a neutral name instead.
        con = duckdb.connect()
        literal = str(analyst_path).replace("'", "''")
        con.execute(f"ATTACH '{literal}' AS stepwise_analyst (READ_ONLY)")
        con.execute("USE stepwise_analyst")
    else:
        con = duckdb.connect(str(analyst_path), read_only=True)
    try:
        check_marts(con)
        period = default_period(con, period_end, period_days)
        is_sandbox = detect_sandbox(con) if sandbox is None else sandbox
        # E-mail-shaped text values (public UTM/form input) are redacted, not a reason to refuse the week.
        redactions = personal_data.redact_marts(con)
        return build_summary(
            con,
            period.start,
            period.end,
            Path(out_root) / period.label,
            sandbox=is_sandbox,
            crm_cohort_lag_days=lag_setting,
            redactions=redactions,
        )
    finally:
        with contextlib.suppress(Exception):
            con.close()


__all__ = [
    "CohortLag",
    "CohortWindow",
    "ExportError",
    "ExportResult",
    "Period",
    "PersonalDataError",
    "build_summary",
    "cohort_funnels",
    "crm_cohort_lag",
    "crm_cohort_window",
    "default_period",
    "find_personal_data",
    "run_export",
]
