"""Report specs and their validation against the property's metadata, before any report request."""

from __future__ import annotations

import pytest

from connectors.ga4 import (
    Ga4Client,
    Ga4ConfigError,
    Ga4Settings,
    ReportSpec,
    column_name,
    default_report_specs,
    spec_from_dict,
)

from .conftest import EXTRA, MAIN, make_client


def test_default_specs_follow_the_contract():
    specs = {s.name: s for s in default_report_specs()}
    assert list(specs) == [
        "web_sessions",
        "events",
        "key_events",
        "ecommerce",
        "landing_pages",
        "campaigns",
        "lead_forms",
    ]
    assert specs["web_sessions"].metrics == ("sessions", "engagedSessions", "totalUsers", "newUsers")
    assert specs["lead_forms"].filters == {"eventName": ("generate_lead",)}
    for spec in specs.values():
        assert spec.problems() == []
        assert len(spec.dimensions) <= 9 and len(spec.metrics) <= 10


def test_column_names_are_snake_case_without_type_suffixes():
    assert column_name("sessionDefaultChannelGroup") == "session_default_channel_group"
    assert column_name("customEvent:form_name") == "custom_event_form_name"
    assert column_name("newVsReturning") == "new_vs_returning"
    assert column_name("date") == "date"


def test_spec_limits_are_checked_without_the_api():
    too_wide = ReportSpec("too_wide", ("date", *[f"customEvent:d{i}" for i in range(9)]), ("sessions",))
    too_many = ReportSpec("too_many", ("date",), tuple(f"m{i}" for i in range(11)))
    no_date = ReportSpec("no_date", ("country",), ("sessions",))
    assert any("at most 9" in p for p in too_wide.problems())
    assert any("at most 10" in p for p in too_many.problems())
    assert any("must include 'date'" in p for p in no_date.problems())


def test_user_spec_from_configuration():
    spec = spec_from_dict(
        {
            "name": "forms_by_device",
            "dimensions": ["date", "customEvent:form_name", "deviceCategory"],
            "metrics": ["eventCount"],
            "filters": {"eventName": "generate_lead"},
        },
        source="stepwise.yaml",
    )
    assert spec.filters == {"eventName": ("generate_lead",)}
    with pytest.raises(Ga4ConfigError, match=r"stepwise.yaml: report 'x': unknown field\(s\) metric"):
        spec_from_dict({"name": "x", "dimensions": ["date"], "metric": ["sessions"]}, source="stepwise.yaml")


def test_unknown_fields_fail_before_any_report_request(sandbox_server):
    client = make_client(sandbox_server, property_ids=(MAIN, EXTRA))
    specs = [
        *default_report_specs(),
        ReportSpec("typos", ("date", "deviceCategry", "customEvent:plan"), ("sesions", "totalUsers")),
    ]
    with pytest.raises(Ga4ConfigError) as info:
        client.validate(specs, source="stepwise.yaml")
    lines = str(info.value).splitlines()
    assert (
        "stepwise.yaml: report 'typos': dimension 'deviceCategry' is not offered by GA4 property 123456789; "
        "did you mean 'deviceCategory'?"
    ) in lines
    assert any(
        "report 'typos': metric 'sesions'" in line and "did you mean 'sessions'" in line for line in lines
    )
    assert any(
        "report 'typos': dimension 'customEvent:plan'" in line and "custom definitions" in line.lower()
        for line in lines
    )
    assert len(lines) == 6  # three bad fields x two properties, one message each
    counters = sandbox_server.counters()
    assert counters.get("route.ga4:runReport", 0) == 0
    assert counters.get("route.ga4:getMetadata") == 2


def test_fetch_validates_a_spec_it_has_not_seen(sandbox_server, settled_window):
    client = make_client(sandbox_server)
    with pytest.raises(Ga4ConfigError, match="report 'bad': metric 'revenue'"):
        list(client.fetch_report(MAIN, ReportSpec("bad", ("date",), ("revenue",)), *settled_window))
    assert sandbox_server.counters().get("route.ga4:runReport", 0) == 0


def test_custom_dimension_passes_validation(sandbox_server):
    client = make_client(sandbox_server)
    client.validate([ReportSpec("forms", ("date", "customEvent:form_name"), ("eventCount",))])


def test_settings_are_checked():
    with pytest.raises(Ga4ConfigError, match="page_size: 300000 must be between 1 and 250,000"):
        Ga4Client(Ga4Settings(property_ids=[MAIN], api_endpoint="http://127.0.0.1:9", page_size=300_000))
    with pytest.raises(Ga4ConfigError, match="'properties/1' is not a GA4 property id"):
        Ga4Client(Ga4Settings(property_ids=["properties/1"], api_endpoint="http://127.0.0.1:9"))


def test_a_bad_key_file_is_named_without_its_content(tmp_path):
    key = tmp_path / "sa.json"
    key.write_text('{"type": "service_account", "private_key": "-----BEGIN SECRET-----abc"}')
    with pytest.raises(Ga4ConfigError) as info:
        Ga4Client(Ga4Settings(property_ids=[MAIN], credentials_file=str(key)))
    assert str(key) in str(info.value)
    assert "SECRET" not in str(info.value) and "abc" not in str(info.value)


def test_page_limit_is_250000_unless_a_page_would_outgrow_its_parse_budget():
    from connectors.ga4.client import page_limit

    narrow = ReportSpec("narrow", ("date",), ("sessions",))
    wide = default_report_specs()[1]  # events: 6 dimensions + 3 metrics
    settings = Ga4Settings(property_ids=[MAIN], api_endpoint="http://127.0.0.1:9")
    assert page_limit(settings, narrow) == 250_000
    assert 50_000 < page_limit(settings, wide) < 250_000
    # A split's value listing asks for one dimension and every metric: a narrower row, a longer page.
    ten_metrics = ReportSpec("ten", ("date", "country"), tuple(f"customEvent:m{i}" for i in range(10)))
    assert page_limit(settings, wide) < page_limit(settings, wide, dimensions=1)
    assert page_limit(settings, ten_metrics, dimensions=1) > page_limit(settings, ten_metrics)
    settings.page_memory_mb = None
    assert page_limit(settings, wide) == 250_000
    settings.page_size = 500
    assert page_limit(settings, wide) == 500


def test_split_order_skips_date_and_pinned_dimensions():
    lead_forms = {s.name: s for s in default_report_specs()}["lead_forms"]
    assert lead_forms.split_order() == ["customEvent:form_name", "sessionDefaultChannelGroup"]
    chosen = ReportSpec(
        "x", ("date", "country", "deviceCategory"), ("sessions",), split_dimension="deviceCategory"
    )
    assert chosen.split_order() == ["deviceCategory", "country"]


def test_no_credentials_at_all_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud sign-in there
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(Ga4ConfigError, match="GA4 credentials: none found"):
        Ga4Client(Ga4Settings(property_ids=[MAIN]))
