"""Stage events and the CRM funnel under re-entered, skipped and moved-back lifecycle stages (issue #12).

A worked example: five contacts of one creation cohort, loaded as raw rows the way the connector writes
them, built with the real SQL. HubSpot keeps the LAST entry into each stage and keeps later stages' dates
when a contact is moved back (docs/CONTRACTS.md §5, "Lifecycle stages as people move them").

| contact | hs_v2_date_entered_* (days after creation)         | now at | what happened                       |
|---------|----------------------------------------------------|--------|-------------------------------------|
| c1      | lead 0, MQL 1, SQL 2, opportunity 3                 | opp    | in order                            |
| c2      | lead 0, SQL 2                                       | SQL    | MQL skipped                         |
| c3      | lead 0, MQL 1, SQL 5, opportunity 3                 | SQL    | moved back from opportunity to SQL  |
| c4      | lead 2, MQL 3                                       | MQL    | MQL, back to lead on day 2, MQL again |
| c5      | lead 0, MQL 1                                       | -      | merged into c1 (never counted)      |

Funnel (cohort of the creation day): lead 4, MQL 4 (c2 reached a later stage), SQL 3, opportunity 2
(c3 had reached it before it was moved back), customer 0.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

from connectors.hubspot.records import OBJECT_SCHEMA, PIPELINES_SCHEMA, PROPERTIES_SCHEMA
from transforms import raw_load
from transforms.build import build_all
from transforms.catalog import default_catalog, default_channel_mapping

PORTAL = "p1"
ZONE = "America/New_York"
CREATED = dt.datetime(2026, 11, 10, 15, 0, tzinfo=dt.UTC)  # 10:00 local: the cohort is 2026-11-10
STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
SHORT = {"lead": "lead", "mql": "marketingqualifiedlead", "sql": "salesqualifiedlead", "opp": "opportunity"}


def iso(days: float) -> str:
    return (CREATED + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


CONTACTS = {
    "1": ({"lead": 0, "mql": 1, "sql": 2, "opp": 3}, "opportunity", "5"),
    "2": ({"lead": 0, "sql": 2}, "salesqualifiedlead", None),
    "3": ({"lead": 0, "mql": 1, "sql": 5, "opp": 3}, "salesqualifiedlead", None),
    "4": ({"lead": 2, "mql": 3}, "marketingqualifiedlead", None),
}


def _contact_row(cid: str, dates: dict[str, float], stage: str, merged_ids: str | None) -> dict:
    props = {
        "createdate": iso(0),
        "lastmodifieddate": iso(6),
        "lifecyclestage": stage,
        "hs_analytics_source": "ORGANIC_SEARCH",
        "hs_object_id": cid,
        **{f"hs_v2_date_entered_{SHORT[k]}": iso(v) for k, v in dates.items()},
    }
    if merged_ids:
        props["hs_merged_object_ids"] = merged_ids
    return {
        "portal_id": PORTAL,
        "id": cid,
        "created_at": CREATED,
        "updated_at": CREATED + dt.timedelta(days=6),
        "archived": False,
        "merged_into": None,
        "properties": json.dumps(props, sort_keys=True),
    }


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("lifecycle") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    properties = pa.RecordBatch.from_pylist(
        [
            {
                "portal_id": PORTAL,
                "object_type": "contacts",
                "name": f"hs_v2_date_entered_{s}",
                "label": s,
                "type": "datetime",
                "field_type": "date",
                "group_name": "contactinformation",
            }
            for s in STAGES
        ],
        schema=PROPERTIES_SCHEMA,
    )
    raw_load.replace_hubspot_metadata(con, "properties", PORTAL, [properties], object_type="contacts")
    pipelines = pa.RecordBatch.from_pylist(
        [
            {
                "portal_id": PORTAL,
                "object_type": "contacts",
                "pipeline_id": "contacts-lifecycle-pipeline",
                "pipeline_label": "Lifecycle Stage Pipeline",
                "stage_id": s,
                "stage_label": s,
                "display_order": i,
                "is_closed": False,
                "probability": None,
            }
            for i, s in enumerate(STAGES)
        ],
        schema=PIPELINES_SCHEMA,
    )
    raw_load.replace_hubspot_metadata(con, "pipelines", PORTAL, [pipelines], object_type="contacts")
    rows = [_contact_row(cid, *spec) for cid, spec in CONTACTS.items()]
    merged_away = _contact_row("5", {"lead": 0, "mql": 1}, "marketingqualifiedlead", None)
    rows += [merged_away, {**merged_away, "properties": "{}", "merged_into": "1", "archived": True}][1:]
    raw_load.upsert_hubspot_objects(
        con, "contacts", PORTAL, [pa.RecordBatch.from_pylist(rows, schema=OBJECT_SCHEMA)], "full"
    )
    build_all(con, default_catalog(), default_channel_mapping(), time_zone=ZONE)
    yield con
    con.close()


def test_stage_events_flag_moves_back_and_skips(con):
    rows = con.execute(
        "SELECT contact_id, stage, stage_order, is_current_stage, entered_after_later_stage, skipped_before, "
        "entered_at_utc FROM staging.hubspot_contact_stage_events ORDER BY contact_id, stage_order"
    ).fetchall()
    got = {(r[0], r[1]): r[2:6] for r in rows}
    assert {r[0] for r in rows} == {"1", "2", "3", "4"}  # the merged-away contact has no events
    # (stage_order, is_current_stage, entered_after_later_stage, skipped_before)
    assert got[("1", "opportunity")] == (4, True, False, 0)
    assert got[("1", "salesqualifiedlead")] == (3, False, False, 0)
    assert got[("2", "salesqualifiedlead")] == (3, True, False, 1)  # MQL skipped
    assert ("2", "marketingqualifiedlead") not in got
    assert got[("3", "salesqualifiedlead")] == (3, True, True, 0)  # moved back: last entry after opp
    assert got[("3", "opportunity")] == (4, False, False, 0)
    assert got[("4", "lead")] == (1, False, False, 0)  # the re-entry rewrote lead, still before MQL
    assert got[("4", "marketingqualifiedlead")] == (2, True, False, 0)
    # One row per contact and stage: a re-entry never adds a second row.
    assert len(rows) == len(got) == 4 + 2 + 4 + 2


def test_crm_funnel_counts_the_deepest_stage_reached(con):
    counts = dict(
        con.execute(
            "SELECT step_name, count FROM marts.funnel_daily WHERE source_system = 'hubspot' AND date = ?",
            [dt.date(2026, 11, 10)],
        ).fetchall()
    )
    steps = con.execute(
        "SELECT step_index, count FROM marts.funnel_daily WHERE source_system = 'hubspot' AND date = ? "
        "AND funnel_name = 'crm' ORDER BY step_index",
        [dt.date(2026, 11, 10)],
    ).fetchall()
    assert counts and [c for _, c in steps] == [4, 4, 3, 2, 0]


def test_stage_entries_are_counted_once_on_the_date_hubspot_keeps(con):
    """channel_funnel_daily counts stage entries on their (last) entry date: each contact once per stage."""
    totals = con.execute(
        "SELECT sum(crm_leads), sum(mqls), sum(sqls), sum(opportunities) FROM marts.channel_funnel_daily"
    ).fetchall()[0]
    assert tuple(int(t) for t in totals) == (4, 3, 3, 2)
    sql_days = dict(
        con.execute(
            "SELECT date, sum(sqls) FROM marts.channel_funnel_daily WHERE sqls > 0 GROUP BY ALL"
        ).fetchall()
    )
    # c1 and c2 entered SQL on day 2; c3's kept entry is its re-entry on day 5.
    assert sql_days == {dt.date(2026, 11, 12): 2, dt.date(2026, 11, 15): 1}
