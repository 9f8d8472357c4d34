"""Issue #17, accounts: the real pipeline over an accounts file and the multi-account sandbox.

Three GA4 properties in New York, Berlin and Tokyo time and two HubSpot portals (connectors/sandbox/
accounts.py), served over HTTP on 127.0.0.1 and reached through the official SDKs as real accounts would
be (STEPWISE_GA4_API_ENDPOINT / STEPWISE_HUBSPOT_HOST). The definitions are loaded from an accounts file
in tmp, in a child process (tests/orchestration/many_accounts_driver.py), against a real Dagster instance
at DAGSTER_HOME. Checked:

* each property's daily sessions in the published analyst file equal the store's truth for that
  property's local days;
* with the EU portal's token revoked, the Berlin account's run fails alone, and the others publish;
* a backfill of the Berlin account alone replaces only its raw rows (the others' `_loaded_at` stay);
* a custom report lands in its own raw table, as its own asset per account;
* a wrong time zone in the file, or a custom report field the property does not offer, stops the
  account's GA4 step before any report request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("many_accounts_driver.py")
END = "2026-11-15"
WINDOW = ("2026-11-12", "2026-11-15")  # the runs' partitions; each GA4 step also re-reads 3 days before
LOADED = ("2026-11-09", "2026-11-15")
CUSTOM = "mobile_sources"
LABELS = {"123456789": "us_store", "234567890": "de_store", "345678901": "jp_store"}
US, DE, JP = LABELS.values()
US_PORTAL, EU_PORTAL = 2345001, 2345002
# Variables a developer's shell may hold that would point the child at something else.
FOREIGN = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STEPWISE_GA4_PROPERTY_IDS",
    "HUBSPOT_ACCESS_TOKEN",
    "STEPWISE_SANDBOX_URL",
)

pytestmark = pytest.mark.slow


def accounts_yaml(*, zones: dict[str, str] | None = None, custom_dimension: str = "sessionSource") -> str:
    from connectors.sandbox.accounts import PROPERTIES

    zones = zones or {}
    props = "".join(
        f'  - id: "{p.property_id}"\n    label: {LABELS[p.property_id]}\n'
        f"    time_zone: {zones.get(p.property_id, p.time_zone)}\n"
        for p in PROPERTIES
    )
    return (
        "version: 1\nga4_properties:\n" + props + "hubspot_portals:\n"
        f'  - {{label: us_crm, portal_id: "{US_PORTAL}", token_env: HUBSPOT_TOKEN_US, ga4_property: {US}}}\n'
        f'  - {{label: eu_crm, portal_id: "{EU_PORTAL}", token_env: HUBSPOT_TOKEN_EU, ga4_property: {DE}}}\n'
        "custom_reports:\n"
        f"  - name: {CUSTOM}\n"
        f"    dimensions: [date, {custom_dimension}, deviceCategory]\n"
        "    metrics: [sessions, engagedSessions]\n"
        "    filters: {deviceCategory: [mobile, tablet]}\n"
    )


class Deployment:
    def __init__(self, root: Path, sandbox: Any, accounts: str) -> None:
        from connectors.sandbox.accounts import PORTALS

        self.root = root
        root.mkdir(parents=True)
        (root / "accounts.yaml").write_text(accounts, encoding="utf-8")
        home = root / "dagster_home"
        home.mkdir()
        shutil.copyfile(REPO / "orchestration" / "dagster_instance.yaml", home / "dagster.yaml")
        tokens = {p.portal_id: p.token for p in PORTALS}
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("STEPWISE_")}
        self.env.update(
            {
                "PYTHONPATH": str(REPO),
                "DAGSTER_HOME": str(home),
                "STEPWISE_ACCOUNTS": str(root / "accounts.yaml"),
                "STEPWISE_GA4_API_ENDPOINT": sandbox.base_url,
                "STEPWISE_HUBSPOT_HOST": sandbox.base_url,
                "HUBSPOT_TOKEN_US": tokens[US_PORTAL],
                "HUBSPOT_TOKEN_EU": tokens[EU_PORTAL],
                "STEPWISE_RATE_BUDGET": "off",
                "STEPWISE_WORKING_DB": str(root / "working" / "stepwise.duckdb"),
                "STEPWISE_ANALYST_DB": str(root / "analyst" / "stepwise.duckdb"),
                "STEPWISE_START_DATE": "2026-11-01",
                "STEPWISE_DUCKDB_THREADS": "2",
                "STEPWISE_DUCKDB_MEMORY_LIMIT": "1GB",
            }
        )

    @property
    def analyst(self) -> Path:
        return self.root / "analyst" / "stepwise.duckdb"

    @property
    def working(self) -> Path:
        return self.root / "working" / "stepwise.duckdb"

    def run(self, *plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(list(plan))],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        results = [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert done.returncode == 0 and len(results) == len(plan), done.stderr[-4000:]
        return {r["job"]: r for r in results}

    def query(self, sql: str, path: Path | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(path or self.analyst), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def account_run(label: str, window: tuple[str, str] = WINDOW, **extra: Any) -> dict[str, Any]:
    return {"job": f"stepwise_{label}", "start": window[0], "end": window[1], **extra}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from connectors.sandbox.accounts import MultiAccountSandbox

    with MultiAccountSandbox(seed=7, days=8, end_date=END, scale=0.15, revisions=False) as served:
        yield served


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, sandbox: Any) -> Iterator[dict[str, Any]]:
    """Round 1: the EU portal's token revoked, every account's daily job over the window (Berlin first, so
    the later accounts' publish follows its failure). Round 2: the token restored, Berlin backfilled alone."""
    deploy = Deployment(tmp_path_factory.mktemp("accounts") / "deploy", sandbox, accounts_yaml())
    sandbox.revoke_portal(EU_PORTAL)
    try:
        first = deploy.run(account_run(DE), account_run(US), account_run(JP))
    finally:
        sandbox.restore_portal(EU_PORTAL)
    loaded_before = dict(
        deploy.query(
            "SELECT property_id, max(_loaded_at) FROM raw.ga4_web_sessions GROUP BY 1", deploy.working
        )
    )
    contacts_before = dict(
        deploy.query("SELECT portal_id, max(_loaded_at) FROM raw.hubspot_contacts GROUP BY 1", deploy.working)
    )
    second = deploy.run(account_run(DE))
    yield {
        "deploy": deploy,
        "first": first,
        "second": second,
        "loaded_before": loaded_before,
        "contacts_before": contacts_before,
    }


def sessions_by_property(deploy: Deployment) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for pid, day, n in deploy.query(
        "SELECT property_id, date, sum(sessions) FROM marts.web_sessions_daily GROUP BY ALL ORDER BY ALL"
    ):
        out.setdefault(pid, {})[str(day)] = int(n)
    return out


def truth_sessions(sandbox: Any, property_id: str) -> dict[str, int]:
    frame = sandbox.truth(property_id).sessions_by_day()
    days = {
        str(d.date() if hasattr(d, "date") else d): int(n)
        for d, n in zip(frame["date"], frame["sessions"], strict=True)
    }
    return {d: n for d, n in days.items() if LOADED[0] <= d <= LOADED[1]}


def test_a_revoked_portal_fails_its_account_alone(deployment: dict[str, Any]) -> None:
    first = deployment["first"]
    assert first[f"stepwise_{US}"]["success"] and first[f"stepwise_{JP}"]["success"], first
    berlin = first[f"stepwise_{DE}"]
    assert not berlin["success"]
    failed = set(berlin["failures"])
    assert failed and all("hubspot" in step for step in failed), failed
    assert any("401" in m or "EXPIRED" in m.upper() for m in berlin["failures"].values()), berlin["failures"]
    # Its own GA4 steps ran; its publish did not, the others' did.
    assert f"raw/{DE}/ga4_web_sessions" in berlin["materialized"]
    assert "publish/analyst_duckdb" not in berlin["materialized"]
    for label in (US, JP):
        assert "publish/analyst_duckdb" in first[f"stepwise_{label}"]["materialized"]
        assert not any(DE in key for key in first[f"stepwise_{label}"]["materialized"])
    # No contact of the EU portal was loaded while its token was revoked.
    assert str(EU_PORTAL) not in deployment["contacts_before"]
    assert str(US_PORTAL) in deployment["contacts_before"]


def test_each_propertys_sessions_equal_its_local_days_truth(deployment: dict[str, Any], sandbox: Any) -> None:
    published = sessions_by_property(deployment["deploy"])
    assert set(published) == set(LABELS)
    for property_id in LABELS:
        truth = truth_sessions(sandbox, property_id)
        assert len(truth) == 7
        assert published[property_id] == truth, property_id
    # The three truths differ (own stores, own zones): nothing was copied from one property to another.
    assert len({tuple(truth_sessions(sandbox, p).values()) for p in LABELS}) == 3
    zones = dict(deployment["deploy"].query("SELECT property_id, time_zone FROM raw.ga4_properties"))
    assert zones == {"123456789": "America/New_York", "234567890": "Europe/Berlin", "345678901": "Asia/Tokyo"}


def test_a_single_account_backfill_touches_only_its_raw_rows(deployment: dict[str, Any]) -> None:
    deploy: Deployment = deployment["deploy"]
    second = deployment["second"][f"stepwise_{DE}"]
    assert second["success"], second["failures"]
    assert "publish/analyst_duckdb" in second["materialized"]
    assert all(
        key.startswith(f"raw/{DE}/")
        for key in second["materialized"]
        if key.startswith("raw/") and key != "raw/request_log"
    )
    after = dict(
        deploy.query(
            "SELECT property_id, max(_loaded_at) FROM raw.ga4_web_sessions GROUP BY 1", deploy.working
        )
    )
    before = deployment["loaded_before"]
    assert after["123456789"] == before["123456789"] and after["345678901"] == before["345678901"]
    assert after["234567890"] > before["234567890"]
    contacts = dict(
        deploy.query("SELECT portal_id, max(_loaded_at) FROM raw.hubspot_contacts GROUP BY 1", deploy.working)
    )
    assert contacts[str(US_PORTAL)] == deployment["contacts_before"][str(US_PORTAL)]
    assert str(EU_PORTAL) in contacts
    # Every partition of the backfill belongs to the Berlin account's own partitions (its zone).
    rows = deploy.query(
        "SELECT DISTINCT property_id, _partition_key FROM raw.ga4_web_sessions WHERE property_id = '234567890' "
        "ORDER BY 2",
        deploy.working,
    )
    assert [k for _, k in rows] == [f"2026-11-{d:02d}" for d in range(9, 16)]


def test_a_custom_report_lands_in_its_own_table_and_asset(deployment: dict[str, Any], sandbox: Any) -> None:
    deploy: Deployment = deployment["deploy"]
    first = deployment["first"]
    for label in LABELS.values():
        run = first[f"stepwise_{label}"]
        assert f"raw/{label}/ga4_custom_{CUSTOM}" in run["materialized"]
    rows = deploy.query(
        f"SELECT property_id, device_category, sum(sessions), count(DISTINCT _partition_key) "
        f"FROM raw.ga4_custom_{CUSTOM} GROUP BY ALL ORDER BY ALL",
        deploy.working,
    )
    assert {d for _, d, _, _ in rows} <= {"mobile", "tablet"} and {p for p, *_ in rows} == set(LABELS)
    assert all(days == 7 for *_, days in rows)
    flags = deploy.query(
        f"SELECT count(*) FROM information_schema.columns WHERE table_schema = 'raw' "
        f"AND table_name = 'ga4_custom_{CUSTOM}' AND column_name IN "
        "('subject_to_thresholding', 'data_loss_from_other_row', '_loaded_at', '_partition_key', '_source_id')",
        deploy.working,
    )
    assert flags[0][0] == 5
    # Its mobile + tablet sessions are the property's own, per day.
    for pid in LABELS:
        web = deploy.query(
            f"SELECT sum(sessions) FROM raw.ga4_web_sessions WHERE property_id = '{pid}' "
            "AND device_category IN ('mobile', 'tablet')",
            deploy.working,
        )[0][0]
        custom = sum(n for p, _, n, _ in rows if p == pid)
        assert custom == web


def test_wrong_zone_or_unknown_custom_field_stops_before_any_report(
    tmp_path: Path, sandbox: Any, deployment: dict[str, Any]
) -> None:
    """Tokyo's file says Europe/Berlin; the custom report asks for 'sessionSorce'. Each account's GA4 step
    stops with the file, line and fix; neither loads a row, and only the zone probe asked for a report."""
    text = accounts_yaml(zones={"345678901": "Europe/Berlin"}, custom_dimension="sessionSorce")
    deploy = Deployment(tmp_path / "bad", sandbox, text)
    before = sum(1 for e in sandbox.server.ctx.counters.events() if e[2] == "ga4:runReport")
    results = deploy.run(
        account_run(JP, (END, END), assets=[f"raw/{JP}/ga4_web_sessions"]),
    )
    run = results[f"stepwise_{JP}"]
    assert not run["success"]
    (message,) = run["failures"].values()
    # The custom report is checked first (metadata only), so it is what stops this step.
    assert "accounts.yaml, line " in message and "sessionSorce" in message and "sessionSource" in message
    assert "Fix:" in message
    reports = sum(1 for e in sandbox.server.ctx.counters.events() if e[2] == "ga4:runReport") - before
    assert reports == 0
    # Without the bad report, the zone stops it: one probe request, no data.
    deploy2 = Deployment(tmp_path / "zone", sandbox, accounts_yaml(zones={"345678901": "Europe/Berlin"}))
    before = sum(1 for e in sandbox.server.ctx.counters.events() if e[2] == "ga4:runReport")
    run = deploy2.run(account_run(JP, (END, END), assets=[f"raw/{JP}/ga4_web_sessions"]))[f"stepwise_{JP}"]
    (message,) = run["failures"].values()
    assert (
        "accounts.yaml, line 11 (ga4_properties time_zone)" in message
        and "Asia/Tokyo" in message
        and "Europe/Berlin" in message
    )
    assert "time_zone: Asia/Tokyo" in message
    reports = sum(1 for e in sandbox.server.ctx.counters.events() if e[2] == "ga4:runReport") - before
    assert reports == 1
    assert (
        not deploy2.working.exists()
        or not deploy2.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ga4_web_sessions'",
            deploy2.working,
        )[0][0]
    )


def test_each_account_has_its_own_job_partitions_and_schedule(tmp_path: Path) -> None:
    """The shipped example file: one job per account on days in the property's zone, and a schedule per
    account ticking in that zone, which requests the account's yesterday once its day has ended there."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("STEPWISE_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DAGSTER_HOME": str(tmp_path),
            "STEPWISE_ACCOUNTS": str(REPO / "examples" / "accounts.yaml"),
        }
    )
    # 2026-11-15 21:00 UTC is 06:00 on the 16th in Tokyo, 22:00 on the 15th in Berlin, 16:00 in New York.
    tokyo_six, new_york_six = "2026-11-15T21:00:00+00:00", "2026-11-16T11:00:00+00:00"
    done = subprocess.run(
        [sys.executable, str(DRIVER), "describe", tokyo_six, new_york_six],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")] or [done.stderr[-3000:]]
    shape = json.loads(line[7:])
    assert shape["jobs"] == {
        "stepwise_us_store": "America/New_York",
        "stepwise_de_store": "Europe/Berlin",
        "stepwise_jp_store": "Asia/Tokyo",
    }
    schedules = shape["schedules"]
    assert {s["zone"] for s in schedules.values()} == {"America/New_York", "Europe/Berlin", "Asia/Tokyo"}
    jp, us = schedules["stepwise_jp_store_schedule"], schedules["stepwise_us_store_schedule"]
    assert (jp["job"], jp["cron"]) == ("stepwise_jp_store", "0 6 * * *")
    # Evaluated at Tokyo's 06:00, Tokyo's schedule asks for Tokyo's 15th (its day ended 6 hours before), with
    # the partition as run key, so a second tick for the same day is not a second run.
    assert jp["requests"][tokyo_six] == [["2026-11-15", "2026-11-15"]]
    assert us["requests"][new_york_six] == [["2026-11-15", "2026-11-15"]]
    keys = set(shape["keys"])
    for label in ("us_store", "de_store", "jp_store"):
        assert f"raw/{label}/ga4_web_sessions" in keys and f"raw/{label}/ga4_custom_mobile_sources" in keys
    assert "raw/jp_store/hubspot_contacts" not in keys  # a web-only property has no HubSpot assets
    assert "raw/ga4_web_sessions" not in keys and "stepwise_daily" not in shape["jobs"]
