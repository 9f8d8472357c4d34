"""Changes to a built store while the sandbox serves it: edits and creates, stamped at any instant.

``Store.touch_contacts``, ``Store.touch`` and ``Store.create_contacts`` call into this module. What it adds:

- ``at="now"`` stamps a change at the real clock (UTC), so a run after a real-time edit sees the same
  cursors production would; ``at=None`` keeps the old default (the store's end instant);
- before a record is changed, its current version is kept in ``<table>__prior`` (one row per id, the
  version just before the latest change, with ``_replaced_at``): the sandbox's search serves that
  version while the change has not reached the search index (``search_lag_seconds``);
- ``store.version`` is bumped by changes that add records (the API's id caches depend on it).

Draws come from the API-behaviours stream ``[seed, 12, 3, n]`` (n counts the changes), never from the
store's main stream.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

RNG_STREAM = 12
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "companies": "hs_lastmodifieddate",
}


def resolve_at(store: Any, at: dt.datetime | str | None) -> dt.datetime:
    """Naive UTC instant of a change: None -> the store's end instant, "now" -> the real clock."""
    if at is None:
        return store.end_instant_utc
    if isinstance(at, str):
        if at != "now":
            raise ValueError(f"at must be a datetime, None or 'now', not {at!r}")
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if at.tzinfo is not None:
        return at.astimezone(dt.UTC).replace(tzinfo=None)
    return at


def keep_prior(cur: Any, store: Any, table: str, ids: list[int]) -> None:
    """Keeps the current version of ``ids`` in ``<table>__prior`` (what the search index still holds)."""
    prior = f"{table}__prior"
    if prior not in store.prior_tables:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {prior} AS SELECT *, now()::TIMESTAMP AS _replaced_at FROM {table} LIMIT 0"
        )
        store.prior_tables.add(prior)
    cur.execute(f"DELETE FROM {prior} WHERE id IN (SELECT unnest($ids))", {"ids": ids})
    cur.execute(
        f"INSERT INTO {prior} SELECT *, now()::TIMESTAMP FROM {table} WHERE id IN (SELECT unnest($ids))",
        {"ids": ids},
    )


def _rng(store: Any) -> np.random.Generator:
    store._live_changes += 1
    return np.random.default_rng([store.seed, RNG_STREAM, 3, store._live_changes])


def touch(
    store: Any,
    object_type: str,
    fraction: float = 0.01,
    at: dt.datetime | str | None = None,
    spread: dt.timedelta = dt.timedelta(hours=1),
    ids: list[int] | None = None,
) -> list[int]:
    """Sets the last-modified instant of ``fraction`` of the live records (or of ``ids``) to ``at`` plus a
    uniform offset within ``spread``; returns the touched ids (sorted)."""
    if object_type not in LAST_MODIFIED:
        raise ValueError(f"object_type must be one of {sorted(LAST_MODIFIED)}")
    at = resolve_at(store, at)
    lmd = LAST_MODIFIED[object_type]
    with store._lock:
        rng = _rng(store)
        cur = store.cursor()
        if ids is None:
            if not 0 < fraction <= 1:
                raise ValueError("fraction must be in (0, 1]")
            live = cur.execute(
                f"SELECT id FROM {object_type} WHERE NOT archived AND merged_into IS NULL ORDER BY id"
            ).fetchnumpy()["id"]
            k = int(round(fraction * live.shape[0]))
            chosen = np.sort(rng.choice(live, size=k, replace=False))
        else:
            chosen = np.asarray(sorted(set(ids)), dtype=np.int64)
        offsets_us = (rng.random(chosen.size) * spread.total_seconds() * 1e6).astype(np.int64)
        at_us = int(at.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
        stamps = pa.table(
            {"id": chosen, "ts": pa.array(at_us + offsets_us, pa.int64()).cast(pa.timestamp("us"))}
        )
        keep_prior(cur, store, object_type, chosen.tolist())
        cur.register("touched_records", stamps)
        cur.execute(
            f"UPDATE {object_type} SET {lmd} = greatest({object_type}.{lmd}, t.ts) "
            f"FROM touched_records AS t WHERE {object_type}.id = t.id"
        )
        cur.unregister("touched_records")
        return [int(i) for i in chosen]


def create_contacts(store: Any, n: int, at: dt.datetime | str | None = None) -> list[int]:
    """Creates ``n`` contacts at ``at`` (an import from outside the website: hs_analytics_source OFFLINE,
    no GA4 session behind them), lifecycle stage lead; returns their ids. Copies the other properties of
    random live contacts."""
    at = resolve_at(store, at)
    with store._lock:
        rng = _rng(store)
        cur = store.cursor()
        live = cur.execute(
            "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL ORDER BY id"
        ).fetchnumpy()["id"]
        templates = rng.choice(live, size=n, replace=True)
        first = int(cur.execute("SELECT max(id) FROM contacts").fetchall()[0][0]) + 1
        new_ids = first + np.arange(n, dtype=np.int64)
        at_us = int(at.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
        plan = pa.table(
            {
                "template": templates,
                "id": new_ids,
                "ts": pa.array(at_us + np.arange(n, dtype=np.int64) * 1000, pa.int64()).cast(
                    pa.timestamp("us")
                ),
            }
        )
        stage_cols = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT column_name FROM information_schema.columns WHERE table_name = 'contacts' "
                "AND column_name LIKE 'hs_v2_date_entered_%'"
            ).fetchall()
        ]
        cleared = ", ".join(f"NULL::TIMESTAMP AS {c}" for c in stage_cols if c != "hs_v2_date_entered_lead")
        cur.register("created_contacts", plan)
        cur.execute(
            f"""
            INSERT INTO contacts BY NAME
            SELECT c.* EXCLUDE (id, email, createdate, lastmodifieddate, lifecyclestage, {", ".join(stage_cols)},
                    hs_analytics_source, first_conversion_date, recent_conversion_date, archived, merged_into,
                    hs_merged_object_ids, session_id, user_id),
                p.id, 'new.' || p.id::VARCHAR || '@example.com' AS email, p.ts AS createdate,
                p.ts AS lastmodifieddate, 'lead' AS lifecyclestage, p.ts AS hs_v2_date_entered_lead, {cleared},
                'OFFLINE' AS hs_analytics_source, p.ts AS first_conversion_date, p.ts AS recent_conversion_date,
                false AS archived, NULL AS merged_into, NULL AS hs_merged_object_ids, NULL AS session_id,
                NULL AS user_id
            FROM created_contacts AS p JOIN contacts AS c ON c.id = p.template
            """
        )
        cur.unregister("created_contacts")
        store.version += 1
        return [int(i) for i in new_ids]
