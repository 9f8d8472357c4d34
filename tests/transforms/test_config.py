"""Conversion catalog and channel mapping: the shipped defaults, and one clear message per mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest

from transforms.build import build_from_files
from transforms.catalog import (
    DEFAULT_CATALOG_PATH,
    DEFAULT_CHANNEL_MAPPING_PATH,
    ConfigError,
    default_catalog,
    default_channel_mapping,
    load_catalog,
    load_channel_mapping,
)


def test_default_catalog_ships_the_expected_conversions():
    catalog = default_catalog()
    by_name = {c.name: c for c in catalog.conversions}
    for name in ("view_item", "add_to_cart", "begin_checkout"):
        assert (by_name[name].kind, by_name[name].funnel_name) == ("process_milestone", "purchase")
    assert by_name["purchase"].tier == "macro" and by_name["purchase"].value_source == "event_value"
    for name in ("sign_up", "file_download", "add_to_wishlist", "search", "share", "view_size_chart", "write_review",
                 "generate_lead", "Demo request", "Newsletter signup", "Brochure request", "Contact us"):  # fmt: skip
        assert by_name[name].kind == "secondary_action", name
    crm = sorted((c.funnel_step, c.signal) for c in catalog.conversions if c.funnel_name == "crm")
    assert crm == [
        (1, "lead"),
        (2, "marketingqualifiedlead"),
        (3, "salesqualifiedlead"),
        (4, "opportunity"),
        (5, "customer"),
    ]
    assert (
        by_name["deal_closed_won"].value_source == "deal_amount"
        and by_name["deal_closed_won"].tier == "macro"
    )


def test_default_mapping_covers_every_hubspot_source_of_the_sandbox():
    from connectors.sandbox.store_model import CHANNEL_TO_HS_SOURCE

    mapping = default_channel_mapping().mapping
    for channel, source in CHANNEL_TO_HS_SOURCE.items():
        assert mapping[source] == channel


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BASE = """
    version: 1
    conversions:
      - name: view_item
        source_system: ga4
        signal: view_item
        tier: micro
        kind: process_milestone
        funnel_name: shop
        funnel_step: 1
      - name: purchase
        source_system: ga4
        signal: purchase
        tier: macro
        funnel_name: shop
        funnel_step: 2
"""


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (("tier: macro\n", "teir: macro\n"), 13, ["unknown key 'teir'", "did you mean 'tier'"]),
        (("name: purchase", "name: view_item"), 10, ["duplicate conversion name 'view_item'", "line 3"]),
        (("funnel_step: 2", "funnel_step: 3"), 10, ["funnel 'shop' has no step 2", "renumber"]),
        (
            ("tier: macro\n", "tier: macro\n    kind: process_milestone\n"),
            14,
            ["macro conversion but has kind", "remove 'kind'"],
        ),
        (("tier: micro", "tier: mikro"), 6, ["tier 'mikro' is not known", "'micro'"]),
        (
            ("kind: process_milestone", "kind: milestone"),
            7,
            ["kind 'milestone' is not known", "'process_milestone'"],
        ),
        (
            ("source_system: ga4\n    signal: purchase", "source_system: ga5\n    signal: purchase"),
            11,
            ["source_system 'ga5'", "'hubspot'"],
        ),
        (("signal: purchase", "signal: buy now"), 12, ["not a valid GA4 event name"]),
        (("version: 1", "version: 1\nversion: 2"), 2, ["key 'version' appears twice"]),
        (("  - name: purchase", "  - name: [purchase"), None, ["not valid YAML"]),
    ],
)
def test_bad_catalog_gives_one_message_with_file_line_and_fix(tmp_path, edit, line, words):
    text = textwrap.dedent(BASE).lstrip().replace(*edit, 1)
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    message = str(info.value)
    assert str(path) in message and "Fix:" in message
    if line is not None:
        assert f"line {line}:" in message, message
        assert info.value.line == line
    for word in words:
        assert word in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "mapping:\n  EMAIL_MARKETING: E-mail\n",
            2,
            ["'E-mail', which is not a GA4 default channel group", "'Email'"],
        ),
        (
            "mapping:\n  EMAIL: Email\n",
            2,
            ["'EMAIL' is not a HubSpot hs_analytics_source value", "EMAIL_MARKETING"],
        ),
        ("unmapped_channel: Other\nmapping:\n  EMAIL_MARKETING: Email\n", 1, ["unmapped_channel 'Other'"]),
        (
            "mappings:\n  EMAIL_MARKETING: Email\n",
            1,
            ["unknown top-level key 'mappings'", "did you mean 'mapping'"],
        ),
        ("mapping:\n  EMAIL_MARKETING: Email\n  EMAIL_MARKETING: Direct\n", 3, ["appears twice"]),
    ],
)
def test_bad_channel_mapping_gives_one_message(tmp_path, text, line, words):
    path = write(tmp_path, "channels.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_channel_mapping(path)
    message = str(info.value)
    assert f"{path}, line {line}:" in message and "Fix:" in message
    for word in words:
        assert word in message, message


def test_catalog_checked_against_ga4_metadata(demo_store):
    catalog = default_catalog()
    catalog.check_ga4_metadata(event_names=demo_store.event_names, dimensions=None)
    with pytest.raises(ConfigError, match=r"conversion_catalog.yaml, line \d+: .*no event 'view_size_chart'"):
        catalog.check_ga4_metadata(event_names=[e for e in demo_store.event_names if e != "view_size_chart"])
    with pytest.raises(ConfigError, match="no dimension 'newVsReturning'"):
        catalog.check_ga4_metadata(
            dimensions={"date", "eventName", "sessionDefaultChannelGroup", "deviceCategory", "country"}
        )


def test_ga4_metadata_hook_with_the_sandbox_metadata(sandbox, tools, demo_store):
    client = tools.ga4_client(sandbox.base_url, demo_store.property_id)
    dimensions, _ = client.metadata(demo_store.property_id)
    default_catalog().check_ga4_metadata(dimensions=dimensions, event_names=demo_store.event_names)


@pytest.mark.parametrize("which", ["catalog", "mapping"])
def test_bad_file_fails_before_anything_is_written(tmp_path, which):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.keep AS SELECT 1 AS x")
    before = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
    bad_catalog = write(
        tmp_path, "c.yaml", DEFAULT_CATALOG_PATH.read_text().replace("tier: micro", "tier: mcro", 1)
    )
    bad_mapping = write(
        tmp_path, "m.yaml", DEFAULT_CHANNEL_MAPPING_PATH.read_text().replace(": Email", ": Emial")
    )
    with pytest.raises(ConfigError) as info:
        if which == "catalog":
            build_from_files(con, bad_catalog, None, time_zone="America/New_York")
        else:
            build_from_files(con, None, bad_mapping, time_zone="America/New_York")
    assert ("c.yaml" if which == "catalog" else "m.yaml") in str(info.value)
    assert (
        con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall() == before
    )
    assert (
        con.execute(
            "SELECT count(*) FROM duckdb_schemas() WHERE schema_name IN ('staging', 'marts')"
        ).fetchall()[0][0]
        == 0
    )


def test_missing_time_zone_is_one_clear_error(tmp_path):
    from transforms.build import BuildError

    con = duckdb.connect(str(tmp_path / "tz.duckdb"))
    with pytest.raises(BuildError, match="record_ga4_property"):
        build_from_files(con)
    with pytest.raises(BuildError, match="not an IANA time zone"):
        build_from_files(con, time_zone="Mars/Olympus")


def test_empty_warehouse_builds(tmp_path):
    """No data yet (first run before any ingest): every mart exists, empty, commented."""
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    result = build_from_files(con, time_zone="America/New_York")
    assert result.mode == "full"
    assert result.row_counts["conversion_catalog"] > 0
    assert result.row_counts["web_sessions_daily"] == 0
