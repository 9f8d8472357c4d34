"""The channel section: web → CRM per channel, from sessions to deals won, with leads per 1,000 sessions."""

from __future__ import annotations

from typing import Any

import duckdb

from reporting import charts
from reporting.marts import (
    as_float,
    ident,
    query_rows,
)
from reporting.period import Period

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


def channel_section(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    stages = [(c, label) for c, label, _ in CHANNEL_STAGES]
    sides = {c: side for c, _, side in CHANNEL_STAGES}
    select = ", ".join(f"sum({ident(c)}) AS {ident(c)}" for c, _ in stages)
    rows = query_rows(
        con,
        f"""SELECT channel, {select} FROM marts.channel_funnel_daily WHERE date BETWEEN $s AND $e
            GROUP BY channel ORDER BY sessions DESC NULLS LAST, channel""",
        {"s": period.start, "e": period.end},
    )
    totals = {c: sum(as_float(r[c]) or 0.0 for r in rows) for c, _ in stages}
    maxima = {c: max((as_float(r[c]) or 0.0 for r in rows), default=0.0) for c, _ in stages}
    for r in rows:
        sessions = as_float(r.get("sessions")) or 0.0
        customers = as_float(r.get("customers")) or 0.0
        leads = as_float(r.get("leads")) or 0.0
        r["customers_per_1000"] = 1000 * customers / sessions if sessions else None
        r["lead_to_customer"] = customers / leads if leads else None
        r["shade"] = {c: ((as_float(r[c]) or 0.0) / maxima[c] if maxima[c] else 0.0) for c, _ in stages}
    for r in rows:
        sessions = as_float(r.get("sessions")) or 0.0
        r["leads_per_1000"] = (
            1000 * (as_float(r.get("leads")) or 0.0) / sessions if sessions and "leads" in r else None
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
