"""The report's English: names made readable, segments and lifts put into sentences, the key findings,
and the number formats the templates use.

Associations are worded as associations, never as causes (issue 11): "as often as", "more often
than", with the interval and q-value beside every lift.
"""

from __future__ import annotations

from reporting import charts


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


def fmt_times(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def fmt_q(q: float | None) -> str:
    if q is None:
        return "not tested"
    return "q < 0.001" if q < 0.001 else f"q = {q:.3f}"


def lift_sentence(
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
    return f"{subject} {verb} {size} (95 % interval {fmt_times(low)}–{fmt_times(high)}, {fmt_q(q)})."


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


def kmoney(v: float | None) -> str:
    if v is None:
        return "–"
    v = float(v)
    if abs(v) >= 1_000_000:
        return f"${v / 1_000_000:.2f}M"
    if abs(v) >= 10_000:
        return f"${v / 1000:.1f}k"
    return f"${v:,.0f}"


def metric_value(metric: dict, which: str = "value") -> str:
    v = metric[which]
    if metric["kind"] == "rate":
        return charts.fmt_pct(v, 2)
    if metric["kind"] == "money":
        return f"${v:,.0f}"
    return charts.fmt_int(v)


def lower_title(title: str) -> str:
    first, _, rest = title.partition(" ")
    return (first if first.isupper() else first.lower()) + (" " + rest if rest else "")


def key_findings(headline: dict, funnels: list[dict], segments: dict, micro_macro: dict) -> list[str]:
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
                f"Biggest leak in the {lower_title(f['title'])}, for contacts created {window.title} "
                f"(cohorts at least {window.lag_days} days old): {drop} of those who reached "
                f"“{f['leak_from'].label}” have not reached “{f['leak'].label}”."
            )
        else:
            out.append(
                f"Biggest leak in the {lower_title(f['title'])} this week: {drop} fewer events at "
                f"“{f['leak'].label}” than at “{f['leak_from'].label}” (GA4 event counts)."
            )
    if segments.get("sentences"):
        out.append(segments["sentences"][0])
    if micro_macro.get("sentences"):
        out.append(micro_macro["sentences"][0])
    return out
