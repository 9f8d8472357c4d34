"""The accounts file (STEPWISE_ACCOUNTS): parsed, validated with one message naming file, line, field and fix;
the single-property settings build the same accounts object."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.accounts import configured_accounts, load_accounts
from orchestration.settings import StepwiseConfigError, load_settings
from transforms.yaml_lines import MAX_ENTRIES, ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "accounts.yaml"

GOOD = """version: 1
ga4_properties:
  - id: "111"
    label: us_store
    time_zone: America/New_York
  - id: "222"
    label: de_store
    time_zone: Europe/Berlin
hubspot_portals:
  - label: de_crm
    portal_id: "2345002"
    token_env: HUBSPOT_TOKEN_DE
    ga4_property: de_store
custom_reports:
  - name: mobile_sources
    dimensions: [date, sessionSource, deviceCategory]
    metrics: [sessions]
    filters: {deviceCategory: [mobile, tablet]}
    properties: [de_store]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_accounts(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "Fix: " in message
    return message


def test_the_example_file_loads() -> None:
    accounts = load_accounts(EXAMPLE)
    assert accounts.labels == ("us_store", "de_store", "jp_store")
    assert [p.time_zone for p in accounts.properties] == ["America/New_York", "Europe/Berlin", "Asia/Tokyo"]
    assert accounts.portal_for("jp_store") is None
    assert accounts.portal_for("de_store").token_env == "HUBSPOT_TOKEN_DE"  # type: ignore[union-attr]
    (report,) = accounts.custom_reports
    assert report.table == "ga4_custom_mobile_sources" and report.properties == accounts.labels


def test_a_good_file(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, GOOD))
    assert accounts.source == "file"
    assert accounts.reports_for("de_store")[0].spec.filters == {"deviceCategory": ("mobile", "tablet")}
    assert accounts.reports_for("us_store") == ()
    assert accounts.property("de_store").line == 6


def test_the_shorthand_builds_the_same_accounts(tmp_path: Path) -> None:
    """STEPWISE_GA4_PROPERTY_IDS + STEPWISE_TIME_ZONE give the accounts a file listing the same properties
    (labelled property_<id>) gives."""
    base = {"STEPWISE_TIME_ZONE": "Europe/Berlin"}
    shorthand = configured_accounts(load_settings({**base, "STEPWISE_GA4_PROPERTY_IDS": "111,222"}))
    path = write(
        tmp_path,
        "ga4_properties:\n"
        + "".join(
            f'  - {{id: "{i}", label: property_{i}, time_zone: Europe/Berlin}}\n' for i in ("111", "222")
        ),
    )
    from_file = configured_accounts(load_settings({**base, "STEPWISE_ACCOUNTS": str(path)}))
    assert shorthand.properties == from_file.properties
    assert (shorthand.source, from_file.source) == ("environment", "file")
    # Unset: the sandbox's property and portal, as today.
    sandbox = configured_accounts(load_settings({}))
    assert [p.property_id for p in sandbox.properties] == ["123456789"]
    assert [p.portal_id for p in sandbox.portals] == ["sandbox"]


def test_the_file_and_the_shorthand_are_not_mixed(tmp_path: Path) -> None:
    with pytest.raises(StepwiseConfigError, match="STEPWISE_ACCOUNTS and STEPWISE_GA4_PROPERTY_IDS"):
        load_settings({"STEPWISE_ACCOUNTS": str(write(tmp_path, GOOD)), "STEPWISE_GA4_PROPERTY_IDS": "1"})


def test_a_pasted_token_is_refused_and_never_quoted(tmp_path: Path) -> None:
    token = "pat-na1-0123abcd-4567-89ef-secret"
    message = error(tmp_path, GOOD.replace("HUBSPOT_TOKEN_DE", token))
    assert "line 12" in message and "token_env" in message
    assert token not in message and "secret" not in message


@pytest.mark.parametrize(
    ("change", "wants"),
    [
        (("time_zone: Europe/Berlin", "time_zone: Europe/Berlln"), ("line 8", "time_zone", "IANA")),
        (("label: de_store\n", "label: De Store\n"), ("line 7", "label", "lower_snake_case")),
        (('id: "222"', 'id: "G-222"'), ("line 6", "'id'", "numeric GA4 property id")),
        (("ga4_property: de_store", "ga4_property: de_stor"), ("line 13", "did you mean 'de_store'")),
        (
            ("    portal_id:", "    portal:"),
            ("line 11", "unknown field 'portal'", "did you mean 'portal_id'"),
        ),
        (
            ("token_env: HUBSPOT_TOKEN_DE", "token_env: STEPWISE_WORKING_DB"),
            ("line 12", "Stepwise or the system"),
        ),
        (("[date, sessionSource", "[sessionSource"), ("line 16", "dimensions must include 'date'")),
        (("metrics: [sessions]", "metrics: []"), ("line 17", "'metrics' must be a list")),
        (("properties: [de_store]", "properties: [fr_store]"), ("line 19", "fr_store", "not a label")),
        (
            ("custom_reports:", "custom_report:"),
            ("line 14", "unknown top-level key", "did you mean 'custom_reports'"),
        ),
        (
            ('  - id: "222"\n    label: de_store', '  - id: "111"\n    label: de_store'),
            ("line 6", "listed twice"),
        ),
    ],
)
def test_each_mistake_names_line_field_and_fix(
    tmp_path: Path, change: tuple[str, str], wants: tuple[str, ...]
) -> None:
    old, new = change
    assert old in GOOD
    message = error(tmp_path, GOOD.replace(old, new, 1))
    for want in wants:
        assert want in message, message


def test_a_second_portal_for_one_property_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "custom_reports:",
        "  - label: de_crm_2\n    portal_id: x2\n    token_env: HUBSPOT_TOKEN_DE2\n    ga4_property: de_store\ncustom_reports:",
    )
    assert "one portal per GA4 property" in error(tmp_path, text)


def test_too_many_metrics_and_hostile_sizes(tmp_path: Path) -> None:
    metrics = ", ".join(f"m{i}" for i in range(11))
    assert "at most 10" in error(tmp_path, GOOD.replace("metrics: [sessions]", f"metrics: [{metrics}]"))
    many = "ga4_properties:\n" + "".join(
        f'  - {{id: "{i}", label: p{i}, time_zone: UTC}}\n' for i in range(MAX_ENTRIES + 1)
    )
    assert "more than the limit" in error(tmp_path, many)
    long_value = "x" * 5_000
    message = error(tmp_path, GOOD.replace("label: us_store", f"label: {long_value}"))
    assert len(message) < 700
