"""A few hostile public values in every sandbox store, so every demo and test run exercises the defences.

UTM parameters and form names are typed by anyone on the internet. The store relabels a handful of
existing sessions (and the contacts created from them) with values an attacker would send
(docs/CONTRACTS.md §5, "Hostile public values"):

- campaign `<!channel> please <https://evil.example/login|re-verify your account>` (Slack markup: an
  @channel ping and a disguised link),
- campaign `=HYPERLINK("http://evil.example","click")` (a spreadsheet formula),
- campaign `x.y@example.com` (shaped like an e-mail address: personal data in an export),
- landing page `/search?q=<script>alert(1)</script>` (HTML),
- form `=cmd|' /C calc'!A0` (a formula as a form name: GA4 `form_name` of the generate_lead event and
  HubSpot `first_conversion_event_name` of the contact it created, the same string on both sides).

Per 7-day block counted back from the store's end: two sessions for each campaign (among sessions
with a named campaign, a tagged link, never "(direct)" or "(organic)") and for the landing page, and
one lead session whose form was "Contact us" for the form. Only labels change: every count,
channel, device, country, purchase and lifecycle date stays as generated, so cross-source lead counts
per date and channel still reconcile exactly and the planted statistics are unaffected (a few sessions
of 2,000 a day). The choice has its own RNG stream, `(seed, 13)`, so the main stream, and every other
draw, is unchanged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np

HOSTILE_STREAM = 13

SLACK_CAMPAIGN = "<!channel> please <https://evil.example/login|re-verify your account>"
FORMULA_CAMPAIGN = '=HYPERLINK("http://evil.example","click")'
EMAIL_CAMPAIGN = "x.y@example.com"
HTML_LANDING_PAGE = "/search?q=<script>alert(1)</script>"
FORMULA_FORM = "=cmd|' /C calc'!A0"

# (session column, value, sessions per 7-day block)
SESSION_VALUES: tuple[tuple[str, str, int], ...] = (
    ("campaign", SLACK_CAMPAIGN, 2),
    ("campaign", FORMULA_CAMPAIGN, 2),
    ("campaign", EMAIL_CAMPAIGN, 2),
    ("landing_page", HTML_LANDING_PAGE, 2),
)
FORMS_PER_BLOCK = 1
# The GA4 form whose lead sessions may be relabelled: a neutral form (not a planted truth's).
SOURCE_FORM = ("contact_us", "Contact us")
BLOCK_DAYS = 7

HOSTILE_VALUES: dict[str, Any] = {
    "campaigns": [SLACK_CAMPAIGN, FORMULA_CAMPAIGN, EMAIL_CAMPAIGN],
    "landing_pages": [HTML_LANDING_PAGE],
    "forms": [FORMULA_FORM],
}


def _blocks(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    out = []
    block_end = end
    while block_end >= start:
        out.append((max(start, block_end - dt.timedelta(days=BLOCK_DAYS - 1)), block_end))
        block_end -= dt.timedelta(days=BLOCK_DAYS)
    return out


def plant(con: duckdb.DuckDBPyConnection, seed: int, start: dt.date, end: dt.date) -> dict[str, int]:
    """Relabel the chosen sessions and contacts in `con` (the store's tables); return rows per value."""
    rng = np.random.default_rng([seed, HOSTILE_STREAM])
    per_block = sum(n for _, _, n in SESSION_VALUES)
    chosen: dict[int, list[int]] = {i: [] for i in range(len(SESSION_VALUES))}
    forms: list[int] = []
    for lo, hi in _blocks(start, end):
        rows = con.execute(
            "SELECT session_id, campaign NOT LIKE '(%' AS tagged FROM sessions WHERE date BETWEEN ? AND ? "
            "ORDER BY session_id",
            [lo, hi],
        ).fetchnumpy()
        ids, tagged = np.asarray(rows["session_id"]), np.asarray(rows["tagged"], dtype=bool)
        # A campaign value replaces a named campaign (a tagged link), never "(direct)" or "(organic)".
        n_campaign = sum(n for column, _, n in SESSION_VALUES if column == "campaign")
        if tagged.sum() < n_campaign or ids.size < per_block:
            continue
        tagged_ids = ids[tagged]
        campaign_picks = tagged_ids[rng.choice(tagged_ids.size, size=n_campaign, replace=False)]
        others = ids[~np.isin(ids, campaign_picks)]
        other_picks = others[rng.choice(others.size, size=per_block - n_campaign, replace=False)]
        picks = np.concatenate([campaign_picks, other_picks])
        pools = {"campaign": iter(campaign_picks.tolist()), "other": iter(other_picks.tolist())}
        for i, (column, _, n) in enumerate(SESSION_VALUES):
            pool = pools["campaign" if column == "campaign" else "other"]
            chosen[i] += [next(pool) for _ in range(n)]
        leads = np.asarray(
            con.execute(
                "SELECT session_id FROM sessions WHERE date BETWEEN ? AND ? AND generate_lead > 0 "
                "AND lead_form = ? ORDER BY session_id",
                [lo, hi, SOURCE_FORM[0]],
            ).fetchnumpy()["session_id"]
        )
        leads = leads[~np.isin(leads, picks)]
        if leads.size >= FORMS_PER_BLOCK:
            forms += leads[rng.choice(leads.size, size=FORMS_PER_BLOCK, replace=False)].tolist()

    counts: dict[str, int] = {}
    for i, (column, value, _) in enumerate(SESSION_VALUES):
        if not chosen[i]:
            continue
        # The column name is one of our constants above, never data.
        con.execute(f"UPDATE sessions SET {column} = ? WHERE session_id IN ?", [value, chosen[i]])
        if column == "campaign":
            # HubSpot keeps the campaign of the session that created the contact (analytics source data 2).
            con.execute(
                "UPDATE contacts SET hs_analytics_source_data_2 = ? WHERE session_id IN ?", [value, chosen[i]]
            )
        counts[value] = len(chosen[i])
    if forms:
        con.execute("UPDATE sessions SET lead_form = ? WHERE session_id IN ?", [FORMULA_FORM, forms])
        con.execute(
            """UPDATE contacts SET first_conversion_event_name = $form,
                   recent_conversion_event_name = CASE WHEN num_conversion_events = 1 THEN $form
                       ELSE recent_conversion_event_name END
               WHERE session_id IN $ids""",
            {"form": FORMULA_FORM, "ids": forms},
        )
        counts[FORMULA_FORM] = len(forms)
    return counts


__all__ = [
    "EMAIL_CAMPAIGN",
    "FORMULA_CAMPAIGN",
    "FORMULA_FORM",
    "HOSTILE_STREAM",
    "HOSTILE_VALUES",
    "HTML_LANDING_PAGE",
    "SLACK_CAMPAIGN",
    "plant",
]
