"""The segments and micro → macro sections: which segments are most receptive (lift against the rest
of the traffic) and which micro conversions go with macro ones, each with its interval and q-value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from reporting import charts
from reporting.marts import (
    as_float,
    query_rows,
    segment_window,
)
from reporting.period import Period
from reporting.wording import MICRO_MACRO_BASIS, humanise, lift_sentence, segment_phrase


def segment_family(con: duckdb.DuckDBPyConnection, window: tuple[dt.date, dt.date]) -> dict[str, Any] | None:
    """The conversion whose segment ranking leads the section: the web macro conversion with the most
    tested segments (GA4 purchases in the default catalog), else any family that was tested."""
    picked = query_rows(
        con,
        """SELECT * FROM (
              SELECT source_system, tier, conversion_name, count(rank) AS ranked,
                     sum(conversions) AS n
              FROM marts.segment_summary WHERE window_start = $ws AND window_end = $we
              GROUP BY ALL)
            ORDER BY (ranked > 0) DESC, (tier = 'macro') DESC, (source_system = 'ga4') DESC,
                     (conversion_name = 'all') DESC, ranked DESC, n DESC, conversion_name LIMIT 1""",
        {"ws": window[0], "we": window[1]},
    )
    return picked[0] if picked else None


def segments_section(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    window = segment_window(con, "segment_summary", period)
    family = segment_family(con, window) if window else None
    if window is None or family is None:
        return {"window": None, "rows": [], "sentences": [], "null_dims": [], "panels": [], "table": []}
    rows = query_rows(
        con,
        """SELECT segment_dimension, segment_value, unit, units, conversions, rate,
                   rate_ci_low, rate_ci_high, rest_rate, lift, lift_ci_low, lift_ci_high, p_value, q_value,
                   significant, rank, gate_reason
            FROM marts.segment_summary
            WHERE window_start = $ws AND window_end = $we AND tier = $tier AND conversion_name = $conv
              AND source_system IS NOT DISTINCT FROM $src
            ORDER BY segment_dimension, rank NULLS LAST, lift_ci_low DESC NULLS LAST, segment_value""",
        {
            "ws": window[0],
            "we": window[1],
            "tier": family["tier"],
            "conv": family["conversion_name"],
            "src": family["source_system"],
        },
    )
    for r in rows:
        r["significant"] = bool(r["significant"])
        r["phrase"] = segment_phrase(r["segment_dimension"], str(r["segment_value"]))
        lift = as_float(r["lift"])
        r["direction"] = (
            "up" if r["significant"] and (lift or 0) >= 1 else "down" if r["significant"] else "none"
        )
    tested = [r for r in rows if r["rank"] is not None and r["lift"] is not None]
    untested = [r for r in rows if r not in tested]
    # Most receptive first: the lower end of the lift interval (the marts rank within a dimension by it).
    overall = sorted(
        tested,
        key=lambda r: (-(as_float(r["lift_ci_low"]) or 0.0), r["segment_dimension"], str(r["segment_value"])),
    )
    positives = [r for r in overall if r["direction"] == "up"]
    negatives = sorted(
        (r for r in tested if r["direction"] == "down"), key=lambda r: as_float(r["lift"]) or 0.0
    )
    conversion = family["conversion_name"]
    what = "convert" if conversion == "all" else f"reach {humanise(conversion).lower()}"
    if conversion == "purchase":
        what = "purchase"
    sentences = [
        lift_sentence(
            r["phrase"][:1].upper() + r["phrase"][1:],
            as_float(r["lift"]),
            as_float(r["lift_ci_low"]),
            as_float(r["lift_ci_high"]),
            as_float(r["q_value"]),
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
                        estimate=as_float(r["lift"]),
                        low=as_float(r["lift_ci_low"]),
                        high=as_float(r["lift_ci_high"]),
                        significant=r["significant"],
                        q_value=as_float(r["q_value"]),
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


def micro_macro_section(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    window = segment_window(con, "micro_macro_lift", period)
    where, params = "", {}
    if window is not None:
        where, params = "WHERE window_start = $ws AND window_end = $we", {"ws": window[0], "we": window[1]}

    rows = query_rows(
        con,
        f"""SELECT micro_conversion, basis, macro_conversion, unit,
                   did_count, did_macro_rate, did_not_count, did_not_macro_rate, lift, lift_ci_low, lift_ci_high,
                   p_value, q_value, significant, rank, gate_reason
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
        lift = as_float(r["lift"])
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
            lift_sentence(
                r["subject"],
                as_float(r["lift"]),
                as_float(r["lift_ci_low"]),
                as_float(r["lift_ci_high"]),
                as_float(r["q_value"]),
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
                    estimate=as_float(r["lift"]),
                    low=as_float(r["lift_ci_low"]),
                    high=as_float(r["lift_ci_high"]),
                    significant=r["significant"],
                    q_value=as_float(r["q_value"]),
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
