"""The data-quality section: what the APIs reported about the period (thresholding, "(other)" rows,
sampling, errors), missing days, sandbox data, and funnel steps reached by another path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from reporting.marts import (
    date_filter,
    ident,
    mart_columns,
    query_rows,
)
from reporting.period import Period
from reporting.wording import lower_title


def data_quality_section(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    sandbox: bool,
    data_end: dt.date | None,
    funnels: list[dict],
) -> dict[str, Any]:
    cols = mart_columns("data_quality")
    filt = date_filter(cols)
    where = f"WHERE {filt[0]}" if filt and filt[1] else ""
    params = {"start": period.start, "end": period.end} if where else {}

    def has(c: str) -> bool:
        return c in cols

    def total(c: str) -> str:
        return f"sum({ident(c)})::DOUBLE" if has(c) else "NULL"

    def count_flag(c: str) -> str:
        return f"count(*) FILTER (WHERE {ident(c)})" if has(c) else "NULL"

    summary = query_rows(
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
    flagged_tables = {table: mart_columns(table) for table in ("web_sessions_daily", "conversions_daily")}

    def flagged_days(flag: str) -> list[str]:
        by_day: dict[dt.date, set[str]] = {}
        sources = [t for t, c in flagged_tables.items() if flag in c and "date" in c]
        for table in sources:
            for (day,) in con.execute(
                f"SELECT DISTINCT date FROM marts.{table} WHERE {ident(flag)} AND date BETWEEN ? AND ?",
                [period.start, period.end],
            ).fetchall():
                by_day.setdefault(day, set()).add(table.replace("_daily", "").replace("_", " "))
        if not sources and has(flag) and has("start_date") and has("end_date"):
            req = "request" if has("request") else "'request'"
            for day, request in con.execute(
                f"""SELECT DISTINCT g.d::DATE, {req} FROM marts.data_quality,
                      generate_series(greatest(start_date, $start)::DATE, least(end_date, $end)::DATE,
                                      INTERVAL 1 DAY) g(d)
                    WHERE {ident(flag)} AND start_date <= $end AND end_date >= $start""",
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
                        "text": f"In the {lower_title(f['title'])}, more events were counted at “{s.label}” than at the "
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
