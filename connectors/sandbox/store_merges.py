"""Merges of deals and companies (contacts' merges are made by the main generator).

In a real portal duplicates of deals and companies are created (a second deal for the same order, a
company created twice from two contacts' e-mail domains) and later merged: the duplicate is merged away
into the record that survives, whose ``hs_merged_object_ids`` lists it, and the duplicate's associations
move to the survivor. This module adds such merged-away duplicates, drawn from its own RNG stream
``[seed, 12, 2]`` (the store's main stream is not touched):

- deals: ``DEAL_DUPLICATE_SHARE`` of the live deals get a duplicate: same contact, name, pipeline, stage,
  amount and dates, a new id after the last one, ``merged_into`` = the original; the duplicate was created
  after the original and merged before the original's last modification;
- companies: ``COMPANY_DUPLICATE_SHARE`` of the live companies get a duplicate (same name, domain and
  country), and one contact of the original (when it has some) was associated with the duplicate instead:
  the API serves that contact's company (``associatedcompanyid`` and every association read) as the
  survivor, the store keeps where the link was made.

Both tables gain ``merged_into`` (BIGINT, NULL on live records) and ``hs_merged_object_ids`` (VARCHAR,
';'-separated on survivors). Merged-away records are never archived and are listed nowhere by the API.
Truths that count deals leave merged-away duplicates out (they are the same deal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

RNG_STREAM = 12
DEAL_DUPLICATE_SHARE = 0.02
COMPANY_DUPLICATE_SHARE = 0.03


def apply_merges(con: Any, seed: int) -> dict[str, int]:
    """Adds merged-away duplicates of deals and companies to ``con``'s tables; returns their numbers."""
    rng = np.random.default_rng([seed, RNG_STREAM, 2])
    out = {"deals": _duplicate_deals(con, rng), "companies": _duplicate_companies(con, rng)}
    return out


def _add_merge_columns(con: Any, table: str) -> None:
    con.execute(f"ALTER TABLE {table} ADD COLUMN merged_into BIGINT")
    con.execute(f"ALTER TABLE {table} ADD COLUMN hs_merged_object_ids VARCHAR")


def _set_survivor_lists(con: Any, table: str) -> None:
    con.execute(
        f"""
        UPDATE {table} SET hs_merged_object_ids = m.ids
        FROM (
            SELECT merged_into AS survivor, string_agg(id::VARCHAR, ';' ORDER BY id) AS ids
            FROM {table} WHERE merged_into IS NOT NULL GROUP BY merged_into
        ) AS m
        WHERE {table}.id = m.survivor
        """
    )


def _duplicate_deals(con: Any, rng: np.random.Generator) -> int:
    _add_merge_columns(con, "deals")
    cols = con.execute(
        """
        SELECT id, epoch(createdate)::BIGINT AS created, epoch(hs_lastmodifieddate)::BIGINT AS lastmod
        FROM deals WHERE NOT archived ORDER BY id
        """
    ).fetchnumpy()
    ids = np.asarray(cols["id"], dtype=np.int64)
    if ids.size == 0:
        return 0
    created = np.asarray(cols["created"], dtype=np.int64)
    lastmod = np.asarray(cols["lastmod"], dtype=np.int64)
    u = rng.random((ids.size, 3))
    room = lastmod - created
    chosen = (u[:, 0] < DEAL_DUPLICATE_SHARE) & (room > 120)
    originals = ids[chosen]
    next_id = int(con.execute("SELECT max(id) FROM deals").fetchall()[0][0]) + 1
    dup_ids = next_id + np.arange(originals.size, dtype=np.int64)
    # Created after the original, merged (its last modification) before the original's last one.
    dup_created = created[chosen] + 30 + (u[chosen, 1] * (room[chosen] // 2)).astype(np.int64)
    dup_merged = dup_created + 30 + (u[chosen, 2] * (lastmod[chosen] - dup_created - 30)).astype(np.int64)
    dups = pa.table(
        {
            "original": originals,
            "id": dup_ids,
            "created": pa.array(dup_created, pa.int64()),
            "merged": pa.array(np.minimum(dup_merged, lastmod[chosen]), pa.int64()),
        }
    )
    con.register("deal_dups", dups)
    con.execute(
        """
        INSERT INTO deals BY NAME
        SELECT d.* EXCLUDE (id, createdate, hs_lastmodifieddate, merged_into, hs_merged_object_ids),
            x.id, make_timestamp(x.created * 1000000) AS createdate,
            make_timestamp(x.merged * 1000000) AS hs_lastmodifieddate,
            x.original AS merged_into, NULL AS hs_merged_object_ids
        FROM deal_dups AS x JOIN deals AS d ON d.id = x.original
        """
    )
    con.unregister("deal_dups")
    _set_survivor_lists(con, "deals")
    return int(originals.size)


def _duplicate_companies(con: Any, rng: np.random.Generator) -> int:
    _add_merge_columns(con, "companies")
    cols = con.execute(
        """
        SELECT id, epoch(createdate)::BIGINT AS created, epoch(hs_lastmodifieddate)::BIGINT AS lastmod
        FROM companies WHERE NOT archived ORDER BY id
        """
    ).fetchnumpy()
    ids = np.asarray(cols["id"], dtype=np.int64)
    if ids.size == 0:
        return 0
    created = np.asarray(cols["created"], dtype=np.int64)
    lastmod = np.asarray(cols["lastmod"], dtype=np.int64)
    u = rng.random((ids.size, 2))
    room = lastmod - created
    chosen = (u[:, 0] < COMPANY_DUPLICATE_SHARE) & (room > 120)
    originals = ids[chosen]
    next_id = int(con.execute("SELECT max(id) FROM companies").fetchall()[0][0]) + 1
    dup_ids = next_id + np.arange(originals.size, dtype=np.int64)
    dup_created = created[chosen] + 30 + (u[chosen, 1] * (room[chosen] - 60)).astype(np.int64)
    dups = pa.table(
        {
            "original": originals,
            "id": dup_ids,
            "created": pa.array(dup_created, pa.int64()),
            "merged": pa.array(lastmod[chosen], pa.int64()),
        }
    )
    con.register("company_dups", dups)
    con.execute(
        """
        INSERT INTO companies BY NAME
        SELECT c.* EXCLUDE (id, createdate, hs_lastmodifieddate, merged_into, hs_merged_object_ids),
            x.id, make_timestamp(x.created * 1000000) AS createdate,
            make_timestamp(x.merged * 1000000) AS hs_lastmodifieddate,
            x.original AS merged_into, NULL AS hs_merged_object_ids
        FROM company_dups AS x JOIN companies AS c ON c.id = x.original
        """
    )
    # The lowest-id contact of each duplicated company was linked to the duplicate (the API follows the
    # merge to the survivor).
    con.execute(
        """
        UPDATE contacts SET associatedcompanyid = x.id
        FROM (
            SELECT x.id, min(c.id) AS contact_id
            FROM company_dups AS x JOIN contacts AS c ON c.associatedcompanyid = x.original
            GROUP BY x.id
        ) AS x
        WHERE contacts.id = x.contact_id
        """
    )
    con.unregister("company_dups")
    _set_survivor_lists(con, "companies")
    return int(originals.size)
