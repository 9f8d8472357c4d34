"""transforms.raw_load: one transaction per slice, reruns never duplicate, streaming batches."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

from transforms import raw_load
from transforms.raw_load import RawLoadError

D1, D2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)


def ga4_batch(day: dt.date, sessions: list[int], property_id: str = "123") -> pa.RecordBatch:
    n = len(sessions)
    return pa.RecordBatch.from_pydict(
        {
            "property_id": [property_id] * n,
            "date": pa.array([day] * n, pa.date32()),
            "session_default_channel_group": [f"ch{i}" for i in range(n)],
            "sessions": pa.array(sessions, pa.int64()),
            "subject_to_thresholding": [False] * n,
            "data_loss_from_other_row": [False] * n,
            "sampled": [False] * n,
        }
    )


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "loads.duckdb"))
    yield con
    con.close()


def sessions_by_day(con) -> dict:
    return dict(con.execute("SELECT date, sum(sessions) FROM raw.ga4_web_sessions GROUP BY 1").fetchall())


def test_ga4_partition_rerun_replaces_its_slice(con):
    assert (
        raw_load.load_ga4_partition(
            con, "web_sessions", "123", D1, D2, [ga4_batch(D1, [1, 2]), ga4_batch(D2, [3])], "p1"
        )
        == 3
    )
    assert sessions_by_day(con) == {D1: 3, D2: 3}
    raw_load.load_ga4_partition(con, "web_sessions", "123", D2, D2, iter([ga4_batch(D2, [10, 20])]), "p2")
    assert sessions_by_day(con) == {D1: 3, D2: 30}
    raw_load.load_ga4_partition(con, "web_sessions", "123", D2, D2, iter([ga4_batch(D2, [10, 20])]), "p2")
    assert sessions_by_day(con) == {D1: 3, D2: 30}
    meta = con.execute(
        "SELECT DISTINCT _partition_key, _source_id FROM raw.ga4_web_sessions ORDER BY 1"
    ).fetchall()
    assert meta == [("p1", "123"), ("p2", "123")]
    # An empty answer for a slice empties it.
    raw_load.load_ga4_partition(con, "web_sessions", "123", D2, D2, iter([]), "p3")
    assert sessions_by_day(con) == {D1: 3}


def test_ga4_failure_midway_rolls_the_slice_back(con):
    raw_load.load_ga4_partition(con, "web_sessions", "123", D1, D1, [ga4_batch(D1, [5])], "p1")

    def failing():
        yield ga4_batch(D1, [100])
        raise RuntimeError("API error on page 2")

    with pytest.raises(RuntimeError, match="page 2"):
        raw_load.load_ga4_partition(con, "web_sessions", "123", D1, D1, failing(), "p2")
    assert sessions_by_day(con) == {D1: 5}


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (ga4_batch(D2, [1]), "outside the partition"),
        (ga4_batch(D1, [1], property_id="999"), "property_id='999'"),
    ],
)
def test_ga4_batches_that_do_not_fit_the_slice_are_refused(con, batch, message):
    with pytest.raises(RawLoadError, match=message):
        raw_load.load_ga4_partition(con, "web_sessions", "123", D1, D1, [batch], "p")
    with pytest.raises(RawLoadError, match="table name"):
        raw_load.load_ga4_partition(con, "web sessions; DROP", "123", D1, D1, [], "p")


def test_ga4_new_column_is_added(con):
    raw_load.load_ga4_partition(con, "web_sessions", "123", D1, D1, [ga4_batch(D1, [1])], "p1")
    wider = ga4_batch(D2, [2])
    wider = wider.append_column("new_users", pa.array([1], pa.int64()))
    raw_load.load_ga4_partition(con, "web_sessions", "123", D2, D2, [wider], "p2")
    assert con.execute("SELECT date, new_users FROM raw.ga4_web_sessions ORDER BY date").fetchall() == [
        (D1, None),
        (D2, 1),
    ]


def contact(id_: str, updated: int, props: dict, archived: bool = False) -> dict:
    return {
        "portal_id": "p",
        "id": id_,
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2026, 1, updated, tzinfo=dt.UTC),
        "archived": archived,
        "merged_into": None,
        "properties": json.dumps(props),
    }


def contacts_batch(*rows: dict) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(list(rows))


def test_hubspot_upsert_newest_version_wins(con):
    n = raw_load.upsert_hubspot_objects(
        con,
        "contacts",
        "p",
        [
            contacts_batch(
                contact("1", 2, {"lifecyclestage": "lead", "hs_analytics_source": "DIRECT_TRAFFIC"})
            )
        ],
        "full",
    )
    assert n == 1
    # Same id twice in one batch: the newer one; then an OLDER version in a later call is ignored.
    raw_load.upsert_hubspot_objects(
        con,
        "contacts",
        "p",
        [
            contacts_batch(
                contact("1", 5, {"lifecyclestage": "customer"}),
                contact("1", 4, {"lifecyclestage": "opportunity"}),
            )
        ],
        "incremental",
    )
    raw_load.upsert_hubspot_objects(
        con, "contacts", "p", [contacts_batch(contact("1", 3, {"lifecyclestage": "mql"}))], "incremental"
    )
    rows = con.execute("SELECT id, properties, _sync_mode FROM raw.hubspot_contacts").fetchall()
    assert len(rows) == 1
    props = json.loads(rows[0][1])
    # Newest stage; the source the newer versions did not carry is kept.
    assert props == {"lifecyclestage": "customer", "hs_analytics_source": "DIRECT_TRAFFIC"}
    assert rows[0][2] == "incremental"


def test_hubspot_archived_pass_keeps_known_properties(con):
    raw_load.upsert_hubspot_objects(
        con,
        "contacts",
        "p",
        [contacts_batch(contact("7", 2, {"country": "Spain", "createdate": "x"}))],
        "full",
    )
    raw_load.upsert_hubspot_objects(
        con, "contacts", "p", [contacts_batch(contact("7", 2, {"createdate": "x"}, archived=True))], "full"
    )
    archived, props = con.execute("SELECT archived, properties FROM raw.hubspot_contacts").fetchall()[0]
    assert archived and json.loads(props)["country"] == "Spain"


def test_hubspot_upsert_rolls_back_on_failure_and_checks_the_portal(con):
    def failing():
        yield contacts_batch(contact("1", 2, {}))
        raise RuntimeError("429 after retries")

    with pytest.raises(RuntimeError):
        raw_load.upsert_hubspot_objects(con, "contacts", "p", failing(), "full")
    assert (
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'hubspot_contacts'").fetchall()[
            0
        ][0]
        == 0
    )
    with pytest.raises(RawLoadError, match="portal_id='p'"):
        raw_load.upsert_hubspot_objects(
            con, "contacts", "other", [contacts_batch(contact("1", 2, {}))], "full"
        )
    with pytest.raises(RawLoadError, match="object type"):
        raw_load.upsert_hubspot_objects(con, "tickets", "p", [], "full")


def test_metadata_replaced_per_portal_and_object_type(con):
    def props(object_type: str, names: list[str], portal: str = "p") -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(
            {"portal_id": [portal] * len(names), "object_type": [object_type] * len(names), "name": names}
        )

    raw_load.replace_hubspot_metadata(
        con, "properties", "p", [props("contacts", ["a", "b"])], object_type="contacts"
    )
    raw_load.replace_hubspot_metadata(con, "properties", "p", [props("deals", ["x"])], object_type="deals")
    raw_load.replace_hubspot_metadata(
        con, "properties", "p", [props("contacts", ["c"])], object_type="contacts"
    )
    raw_load.replace_hubspot_metadata(
        con, "properties", "q", [props("contacts", ["z"], portal="q")], object_type="contacts"
    )
    rows = con.execute(
        "SELECT portal_id, object_type, name FROM raw.hubspot_properties ORDER BY ALL"
    ).fetchall()
    assert rows == [("p", "contacts", "c"), ("p", "deals", "x"), ("q", "contacts", "z")]
    raw_load.replace_hubspot_metadata(con, "properties", "p", [props("contacts", ["d"])])
    assert (
        con.execute("SELECT count(*) FROM raw.hubspot_properties WHERE portal_id = 'p'").fetchall()[0][0] == 1
    )


def test_request_log_is_appended_with_typed_columns_and_extras(con):
    entry = {
        "source": "ga4",
        "source_id": "123",
        "request": "events",
        "mode": "full",
        "start_date": D1,
        "end_date": "2026-11-02",
        "rows": 10,
        "requests": 2,
        "subject_to_thresholding": True,
        "started_at": dt.datetime(2026, 11, 3, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "finished_at": "2026-11-03T10:00:05+00:00",
        "wait_seconds": 1,
        "custom_field": {"a": 1},
    }
    assert raw_load.append_request_log(con, "run-1", [entry]) == 1
    assert raw_load.append_request_log(con, "run-2", [entry, {**entry, "error": "boom"}]) == 2
    rows = con.execute(
        "SELECT run_id, start_date, end_date, rows, subject_to_thresholding, started_at, finished_at, wait_seconds, "
        "extra, error FROM raw.request_log ORDER BY run_id, error NULLS FIRST"
    ).fetchall()
    assert len(rows) == 3
    run_id, start, end, n, flag, started, finished, wait, extra, error = rows[0]
    assert (run_id, start, end, n, flag) == ("run-1", "2026-11-01", "2026-11-02", 10, True)
    assert started == dt.datetime(2026, 11, 3, 10) and finished == dt.datetime(2026, 11, 3, 10, 0, 5)
    assert wait == 1.0 and json.loads(extra) == {"custom_field": {"a": 1}} and error is None
    assert rows[2][-1] == "boom"


def test_record_ga4_property_checks_the_time_zone(con):
    raw_load.record_ga4_property(con, "123", time_zone="America/New_York", currency_code="USD")
    raw_load.record_ga4_property(con, "123", time_zone="Europe/Berlin")
    assert con.execute("SELECT property_id, time_zone FROM raw.ga4_properties").fetchall() == [
        ("123", "Europe/Berlin")
    ]
    with pytest.raises(RawLoadError, match="IANA"):
        raw_load.record_ga4_property(con, "123", time_zone="EST5")
