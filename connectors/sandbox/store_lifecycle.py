"""Lifecycle stages as people really move them: re-entered, skipped and moved back.

The main generator enters each stage once, in order. In a real portal a stage is set by hand or by a
workflow, so some contacts skip a stage, some are moved back and some enter a stage a second time. This
module rewrites the generated ``hs_v2_date_entered_<stage>`` columns of a documented share of contacts with
the semantics of HubSpot's calculated "Date entered <stage> (Lifecycle Stage Pipeline)" properties:

- the property holds the LAST time the contact entered the stage: a re-entry rewrites it;
- moving a contact back to an earlier stage does not clear the dates of the later stages it had entered
  (they stay as history), and enters the earlier stage again (its date is rewritten to the move);
- a skipped stage was never entered: its property stays empty while a later stage has a date.

Three variants, drawn from this module's own RNG stream ``[seed, 12, 1]`` (the store's main stream is
not touched, so every other generated value stays as it was), among contacts that never became customers
(customer dates, closed-won deals and the planted customer-rate truths are unchanged):

| variant | who (eligible) | share of eligible | what changes |
|---|---|---|---|
| ``skipped_mql`` | entered salesqualifiedlead (and marketingqualifiedlead) | 6 % | MQL date cleared: lead -> SQL directly |
| ``moved_back`` | now at opportunity | 8 % | back to salesqualifiedlead at a time after the opportunity date: lifecyclestage = SQL, SQL date = that time, opportunity date kept |
| ``reentered_mql`` | now at marketingqualifiedlead | 6 % | moved back to lead, then MQL again: lead date = the move back, MQL date = the re-entry (both after the first MQL date) |

Every rewritten date stays before ``lastmodifieddate`` (which stays before the store's end). Contacts
whose last modification leaves no room (under two minutes after the stage date) are not eligible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

RNG_STREAM = 12  # the API-behaviours stream id (docs/CONTRACTS.md: one stream per feature)
SKIP_MQL_SHARE = 0.06
MOVED_BACK_SHARE = 0.08
REENTERED_MQL_SHARE = 0.06
_MIN_ROOM_S = 120


def apply_lifecycle_variants(con: Any, seed: int) -> dict[str, int]:
    """Rewrites the stage columns of ``contacts`` in ``con``; returns how many contacts each variant got."""
    rng = np.random.default_rng([seed, RNG_STREAM, 1])
    cols = con.execute(
        """
        SELECT id, lifecyclestage,
            epoch(hs_v2_date_entered_marketingqualifiedlead)::BIGINT AS mql,
            epoch(hs_v2_date_entered_salesqualifiedlead)::BIGINT AS sql,
            epoch(hs_v2_date_entered_opportunity)::BIGINT AS opp,
            hs_v2_date_entered_customer IS NOT NULL AS customer,
            epoch(lastmodifieddate)::BIGINT AS lastmod
        FROM contacts ORDER BY id
        """
    ).fetchnumpy()
    n = len(cols["id"])
    ids = np.asarray(cols["id"], dtype=np.int64)
    stage = np.asarray(cols["lifecyclestage"], dtype=object)
    lastmod = np.asarray(cols["lastmod"], dtype=np.int64)

    def seconds(name: str) -> tuple[np.ndarray, np.ndarray]:
        arr = np.ma.masked_invalid(np.ma.asarray(cols[name], dtype=np.float64))
        valid = ~np.ma.getmaskarray(arr)
        return np.asarray(arr.filled(0), dtype=np.int64), valid

    mql, has_mql = seconds("mql")
    sql, has_sql = seconds("sql")
    opp, has_opp = seconds("opp")
    customer = np.asarray(cols["customer"], dtype=bool)
    # One uniform draw per contact and variant, in id order: the choice does not depend on the others.
    u = rng.random((n, 5))

    skip = (~customer & has_sql & has_mql) & (u[:, 0] < SKIP_MQL_SHARE)
    back_ok = ~customer & has_opp & (stage == "opportunity") & (lastmod - opp > _MIN_ROOM_S)
    back = back_ok & (u[:, 1] < MOVED_BACK_SHARE)
    re_ok = (
        ~customer & has_mql & ~has_sql & (stage == "marketingqualifiedlead") & (lastmod - mql > _MIN_ROOM_S)
    )
    reenter = re_ok & (u[:, 2] < REENTERED_MQL_SHARE)

    back_at = opp + 60 + (u[:, 3] * (lastmod - opp - 60)).astype(np.int64)
    moved_to_lead = mql + 60 + (u[:, 3] * (lastmod - mql - 120)).astype(np.int64)
    reentered_at = moved_to_lead + 30 + (u[:, 4] * (lastmod - moved_to_lead - 30)).astype(np.int64)

    kind = np.full(n, "", dtype=object)
    kind[skip] = "skipped_mql"
    kind[back] = "moved_back"
    kind[reenter] = "reentered_mql"
    chosen = kind != ""
    changes = pa.table(
        {
            "id": ids[chosen],
            "kind": pa.array(kind[chosen].astype(str)),
            "back_at": pa.array(back_at[chosen], pa.int64()),
            "lead_at": pa.array(moved_to_lead[chosen], pa.int64()),
            "mql_at": pa.array(reentered_at[chosen], pa.int64()),
        }
    )
    con.register("lifecycle_changes", changes)
    con.execute(
        """
        UPDATE contacts SET
            hs_v2_date_entered_marketingqualifiedlead = CASE v.kind
                WHEN 'skipped_mql' THEN NULL
                WHEN 'reentered_mql' THEN make_timestamp(v.mql_at * 1000000)
                ELSE contacts.hs_v2_date_entered_marketingqualifiedlead END,
            hs_v2_date_entered_lead = CASE v.kind
                WHEN 'reentered_mql' THEN make_timestamp(v.lead_at * 1000000)
                ELSE contacts.hs_v2_date_entered_lead END,
            hs_v2_date_entered_salesqualifiedlead = CASE v.kind
                WHEN 'moved_back' THEN make_timestamp(v.back_at * 1000000)
                ELSE contacts.hs_v2_date_entered_salesqualifiedlead END,
            lifecyclestage = CASE v.kind WHEN 'moved_back' THEN 'salesqualifiedlead' ELSE contacts.lifecyclestage END
        FROM lifecycle_changes AS v WHERE contacts.id = v.id
        """
    )
    con.unregister("lifecycle_changes")
    return {k: int((kind == k).sum()) for k in ("skipped_mql", "moved_back", "reentered_mql")}
