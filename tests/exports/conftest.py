"""Fixtures for the export tests: marts to report on, Chromium to render with, a DOM to read.

`fixture_marts` is a small DuckDB file of marts (deterministic, aggregate only), so the report can be
tested without running the whole pipeline. Its tables are created from the model contracts
(transforms/sql/**, transforms.model_contracts): same columns, same types as the built marts; the rows
below fill the columns the tests read, the others stay NULL.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from transforms.model_contracts import load_all_contracts

PERIOD_END = dt.date(2026, 11, 22)  # a Sunday: the report covers ISO week 2026-W47
WEEK_START = dt.date(2026, 11, 16)
REPO = Path(__file__).resolve().parents[2]
# The real pipeline's sandbox for these tests: 14 days (ISO weeks 46 and 47), small, seeded.
PIPELINE_STORE = {"preset": "demo", "seed": 7, "end_date": PERIOD_END, "days": 14, "sessions_per_day": 300}
CREDENTIAL_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "HUBSPOT_ACCESS_TOKEN", "STEPWISE_SANDBOX_URL")

CHANNELS = [
    "Organic Search",
    "Paid Search",
    "Direct",
    "Email",
    "Organic Social",
    "Paid Social",
    "Referral",
    "Display",
]
DEVICES = ["desktop", "mobile", "tablet"]
COUNTRIES = ["United States", "Germany", "United Kingdom", "France", "Canada"]
VISITOR_TYPES = ["new", "returning"]

# (name, source_system, signal, tier, kind, funnel_name, funnel_step, value, per-session rate)
CATALOG = [
    ("view_item", "ga4", "view_item", "micro", "process_milestone", "ecommerce", 1, 0.0, 0.55),
    ("add_to_cart", "ga4", "add_to_cart", "micro", "process_milestone", "ecommerce", 2, 0.0, 0.18),
    ("begin_checkout", "ga4", "begin_checkout", "micro", "process_milestone", "ecommerce", 3, 0.0, 0.08),
    ("purchase", "ga4", "purchase", "macro", None, "ecommerce", 4, 0.0, 0.03),
    ("add_to_wishlist", "ga4", "add_to_wishlist", "micro", "secondary_action", None, None, 0.0, 0.06),
    ("view_size_chart", "ga4", "view_size_chart", "micro", "secondary_action", None, None, 0.0, 0.09),
    ("sign_up", "ga4", "sign_up", "micro", "secondary_action", None, None, 0.0, 0.02),
    ("generate_lead", "ga4", "generate_lead", "micro", "secondary_action", "lead", 1, 0.0, 0.03),
    (
        "marketingqualifiedlead",
        "hubspot",
        "lifecyclestage:marketingqualifiedlead",
        "micro",
        "process_milestone",
        "lead",
        2,
        0.0,
        0.012,
    ),
    (
        "opportunity",
        "hubspot",
        "lifecyclestage:opportunity",
        "micro",
        "process_milestone",
        "lead",
        3,
        0.0,
        0.005,
    ),
    ("customer", "hubspot", "lifecyclestage:customer", "macro", None, "lead", 4, 0.0, 0.002),
]


MART_CONTRACTS = {m.name: m for m in load_all_contracts() if m.schema == "marts"}


def create_mart(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """marts.<name> exactly as its contract declares it (columns, order, types), empty."""
    columns = ", ".join(f'"{c.name}" {c.type}' for c in MART_CONTRACTS[name].columns)
    con.execute(f"CREATE TABLE marts.{name} ({columns})")


def build_fixture_marts(path: Path, end_date: dt.date = dt.date(2026, 11, 22), days: int = 56) -> Path:
    start_date = end_date - dt.timedelta(days=days - 1)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        for name in MART_CONTRACTS:
            create_mart(con, name)
        # The catalog with each conversion's per-session rate, which generates the fixture's counts.
        con.execute(
            """CREATE TEMP TABLE fixture_catalog (conversion_name VARCHAR, source_system VARCHAR,
               signal VARCHAR, tier VARCHAR, kind VARCHAR, funnel_name VARCHAR, funnel_step INTEGER,
               value DOUBLE, per_session_rate DOUBLE)"""
        )
        con.executemany("INSERT INTO fixture_catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", CATALOG)
        con.execute(
            "INSERT INTO marts.conversion_catalog BY NAME SELECT * EXCLUDE (per_session_rate) FROM fixture_catalog"
        )
        con.execute("CREATE TABLE dims_channel AS SELECT unnest(?::VARCHAR[]) AS channel", [CHANNELS])
        con.execute("CREATE TABLE dims_device AS SELECT unnest(?::VARCHAR[]) AS device_category", [DEVICES])
        con.execute("CREATE TABLE dims_country AS SELECT unnest(?::VARCHAR[]) AS country", [COUNTRIES])
        con.execute("CREATE TABLE dims_vt AS SELECT unnest(?::VARCHAR[]) AS visitor_type", [VISITOR_TYPES])
        con.execute(
            """
            INSERT INTO marts.web_sessions_daily BY NAME
            SELECT d::DATE AS date, '123456789' AS property_id, channel, device_category, country, visitor_type,
                   (3 + hash(d, channel, device_category, country, visitor_type) % 9
                      + CASE channel WHEN 'Organic Search' THEN 6 WHEN 'Direct' THEN 4 ELSE 0 END
                      + CASE WHEN dayofweek(d) IN (0, 6) THEN -2 ELSE 1 END)::BIGINT AS sessions,
                   0::BIGINT AS engaged_sessions, 0::BIGINT AS total_users, 0::BIGINT AS new_users
            FROM generate_series(?::DATE, ?::DATE, INTERVAL 1 DAY) AS t(d), dims_channel, dims_device, dims_country, dims_vt
            """,
            [start_date, end_date],
        )
        con.execute(
            """UPDATE marts.web_sessions_daily SET engaged_sessions = (sessions * 0.6)::BIGINT,
               total_users = (sessions * 0.9)::BIGINT, new_users = (sessions * 0.5)::BIGINT,
               engagement_rate = 0.6, subject_to_thresholding = false,
               data_loss_from_other_row = dayofmonth(date) = 18, sampled = false"""
        )
        con.execute(
            """
            INSERT INTO marts.conversions_daily BY NAME
            WITH base AS (
              SELECT w.date, c.source_system, CASE c.source_system WHEN 'ga4' THEN '123456789' ELSE 'sandbox' END AS source_id,
                     c.conversion_name, c.tier, c.kind, w.channel, w.device_category, w.country, w.visitor_type,
                     w.sessions,
                     c.per_session_rate * CASE w.channel WHEN 'Email' THEN 1.8 WHEN 'Display' THEN 0.45 ELSE 1.0 END
                       * (0.85 + (hash(w.date, c.conversion_name, w.channel, w.country) % 30) / 100.0) AS r
              FROM marts.web_sessions_daily w, fixture_catalog c
            )
            SELECT date, source_system, source_id, conversion_name, tier, kind, channel, device_category, country,
                   visitor_type, round(sessions * r * 1.0 + (hash(date, conversion_name, channel, device_category) % 100) / 100.0 - 0.3)::BIGINT AS conversions,
                   0::BIGINT AS users, 0.0::DOUBLE AS value
            FROM base
            """
        )
        con.execute("UPDATE marts.conversions_daily SET conversions = greatest(conversions, 0)")
        # GA4 quality flags planted on the daily marts: thresholding on the 17th and 20th (events), an
        # '(other)' row on the 18th (web sessions, above).
        con.execute(
            """UPDATE marts.conversions_daily SET
               subject_to_thresholding = source_system = 'ga4' AND dayofmonth(date) IN (17, 20),
               data_loss_from_other_row = false, sampled = false"""
        )
        con.execute(
            "UPDATE marts.conversions_daily SET users = conversions, value = CASE conversion_name WHEN 'purchase' THEN conversions * 84.5 WHEN 'customer' THEN conversions * 1200 ELSE 0 END"
        )
        con.execute("DELETE FROM marts.conversions_daily WHERE conversions = 0")
        for tier in ("micro", "macro"):
            con.execute(
                f"""INSERT INTO marts.{tier}_conversions_daily BY NAME
                SELECT c.*, w.sessions, c.conversions / w.sessions AS conversion_rate
                FROM marts.conversions_daily c JOIN marts.web_sessions_daily w
                USING (date, channel, device_category, country, visitor_type) WHERE c.tier = '{tier}'"""
            )
        con.execute(
            """
            INSERT INTO marts.funnel_daily BY NAME
            WITH daily AS (
              SELECT c.date, k.funnel_name, k.funnel_step AS step_index, k.conversion_name AS step_name, sum(c.conversions) AS n
              FROM marts.conversions_daily c JOIN marts.conversion_catalog k USING (conversion_name)
              WHERE k.funnel_name IS NOT NULL GROUP BY ALL
            ),
            steps AS (
              -- The 'lead' funnel is a CRM creation-cohort funnel, as in the real marts: a cohort's later
              -- steps fill up over the first 42 days of its life, so this week's cohorts show almost
              -- nobody past the first step (the immature cohorts a report must not read a leak from).
              SELECT date, funnel_name, step_index, step_name,
                     CASE WHEN funnel_name = 'lead' THEN 'hubspot' ELSE 'ga4' END AS source_system,
                     CASE WHEN funnel_name = 'lead' THEN 'contacts (cohort by created date)' ELSE 'events' END AS count_unit,
                     CASE WHEN funnel_name = 'lead' AND step_index > 1
                          THEN floor(n * least(1.0, date_diff('day', date, $end::DATE) / 42.0))::BIGINT
                          ELSE n END AS count
              FROM daily
            )
            SELECT date, funnel_name, source_system, step_index, step_name, count, count_unit,
                   count / lag(count) OVER w AS rate_from_previous,
                   count / first_value(count) OVER w AS rate_from_first,
                   1 - count / lag(count) OVER w AS drop_off
            FROM steps WINDOW w AS (PARTITION BY date, funnel_name ORDER BY step_index)
            """,
            {"end": end_date},
        )
        con.execute(
            """
            INSERT INTO marts.channel_funnel_daily BY NAME
            SELECT w.date, w.channel, sum(w.sessions) AS sessions, sum(w.engaged_sessions) AS engaged_sessions,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'purchase') AS web_macro_conversions,
              (SELECT sum(value) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'purchase') AS web_revenue,
              (SELECT sum(conversions) FROM marts.micro_conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.source_system = 'ga4') AS micro_conversions,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'generate_lead') AS leads,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'generate_lead') AS contacts_created,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'marketingqualifiedlead') AS mqls,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'marketingqualifiedlead') // 2 AS sqls,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'opportunity') AS opportunities,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'customer') AS customers,
              (SELECT sum(conversions) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'customer') AS deals_won,
              (SELECT sum(value) FROM marts.conversions_daily m WHERE m.date = w.date AND m.channel = w.channel AND m.conversion_name = 'customer') AS revenue
            FROM marts.web_sessions_daily w GROUP BY ALL
            """
        )
        con.execute(
            """UPDATE marts.channel_funnel_daily SET micro_conversions = coalesce(micro_conversions, 0),
               web_macro_conversions = coalesce(web_macro_conversions, 0), web_revenue = coalesce(web_revenue, 0),
               leads = coalesce(leads, 0), contacts_created = coalesce(contacts_created, 0), mqls = coalesce(mqls, 0),
               sqls = coalesce(sqls, 0), opportunities = coalesce(opportunities, 0), customers = coalesce(customers, 0),
               deals_won = coalesce(deals_won, 0), revenue = coalesce(revenue, 0)"""
        )
        segment_rows = [
            # dimension, value, units, conversions, rest_rate, lift, lo, hi, p, q, significant
            ("channel", "Email", 5200, 290, 0.031, 1.80, 1.58, 2.04, 1e-12, 1e-11, True),
            ("channel", "Organic Search", 12800, 420, 0.030, 1.09, 0.98, 1.21, 0.11, 0.29, False),
            ("channel", "Direct", 9600, 300, 0.031, 1.01, 0.90, 1.14, 0.86, 0.93, False),
            ("channel", "Paid Search", 5100, 150, 0.031, 0.95, 0.81, 1.12, 0.55, 0.82, False),
            ("channel", "Display", 5000, 70, 0.032, 0.44, 0.35, 0.56, 1e-9, 5e-9, True),
            ("device_category", "desktop", 16000, 500, 0.031, 1.02, 0.92, 1.13, 0.70, 0.88, False),
            ("device_category", "mobile", 16500, 505, 0.031, 0.99, 0.89, 1.10, 0.85, 0.93, False),
            ("country", "Germany", 8000, 251, 0.031, 1.01, 0.89, 1.15, 0.87, 0.93, False),
            ("country", "United States", 9000, 275, 0.031, 0.98, 0.87, 1.11, 0.77, 0.91, False),
        ]
        ranked = sorted(segment_rows, key=lambda r: -r[6])
        for rank, (dim, val, units, conv, rest, lift, lo, hi, p, q, sig) in enumerate(ranked, start=1):
            rate = conv / units
            con.execute(
                "INSERT INTO marts.segment_summary (window_start, window_end, source_system, tier, conversion_name, "
                "segment_dimension, segment_value, unit, units, conversions, rate, rate_ci_low, rate_ci_high, rest_rate, "
                "lift, lift_ci_low, lift_ci_high, p_value, q_value, significant, rank) "
                "VALUES (?, ?, 'ga4', 'macro', 'all', ?, ?, 'sessions', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    start_date,
                    end_date,
                    dim,
                    val,
                    units,
                    conv,
                    rate,
                    rate * 0.9,
                    rate * 1.1,
                    rest,
                    lift,
                    lo,
                    hi,
                    p,
                    q,
                    sig,
                    rank,
                ],
            )
        con.executemany(
            "INSERT INTO marts.micro_macro_lift (micro_conversion, basis, macro_conversion, did_count, did_macro_rate, "
            "did_not_count, did_not_macro_rate, lift, lift_ci_low, lift_ci_high, p_value, q_value, significant, rank) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    "Demo request",
                    "contacts",
                    "customer",
                    210,
                    0.31,
                    1900,
                    0.06,
                    5.2,
                    3.9,
                    6.8,
                    1e-20,
                    1e-19,
                    True,
                    1,
                ),
                (
                    "add_to_wishlist",
                    "sessions",
                    "purchase",
                    2400,
                    0.11,
                    40000,
                    0.028,
                    3.9,
                    3.4,
                    4.5,
                    1e-30,
                    1e-29,
                    True,
                    2,
                ),
                (
                    "Brochure request",
                    "contacts",
                    "customer",
                    400,
                    0.08,
                    1700,
                    0.07,
                    1.14,
                    0.81,
                    1.6,
                    0.44,
                    0.6,
                    False,
                    3,
                ),
                (
                    "share",
                    "sessions",
                    "purchase",
                    800,
                    0.031,
                    41600,
                    0.030,
                    1.03,
                    0.7,
                    1.5,
                    0.88,
                    0.9,
                    False,
                    4,
                ),
                (
                    "Newsletter signup",
                    "contacts",
                    "customer",
                    900,
                    0.05,
                    1200,
                    0.09,
                    0.55,
                    0.4,
                    0.76,
                    0.0004,
                    0.001,
                    True,
                    5,
                ),
            ],
        )
        # One statistics window: the fixture's whole span.
        con.execute(
            "UPDATE marts.micro_macro_lift SET window_start = ?, window_end = ?", [start_date, end_date]
        )
        con.execute(
            """
            INSERT INTO marts.data_quality BY NAME
            SELECT 'run-' || strftime(d, '%Y%m%d') AS run_id, 'ga4' AS source, '123456789' AS source_id, r AS request,
                   'full' AS mode, d::DATE AS start_date, d::DATE AS end_date, 100::BIGINT AS rows, 1 AS pages,
                   1 AS requests, (hash(d, r) % 7 = 0)::INT AS retries, 0 AS http_429,
                   (r = 'events' AND dayofmonth(d) IN (17, 20)) AS subject_to_thresholding,
                   (r = 'landing_pages' AND dayofmonth(d) = 18) AS data_loss_from_other_row,
                   false AS sampled, 12 AS quota_tokens_used, NULL::VARCHAR AS error
            FROM generate_series(?::DATE, ?::DATE, INTERVAL 1 DAY) t(d), (SELECT unnest(['web_sessions', 'events', 'landing_pages']) r)
            """,
            [start_date, end_date],
        )
        # Experiments (marts.experiment_readout, created from its contract): one "micro up, macro flat", one
        # sample-ratio mismatch, one with no detectable difference. Rows in the contract's column order.
        experiments = [
            (
                "checkout_button",
                "micro up, macro flat",
                0.31,
                False,
                15035,
                15593,
                [
                    ("add_to_cart", "micro", 3226, 3891, 0.163, 0.088, 0.237, 0.0001, True),
                    ("purchase", "macro", 797, 783, -0.053, -0.195, 0.089, 1.0, False),
                ],
            ),
            (
                "hero_video",
                "sample-ratio mismatch: do not read",
                1e-40,
                True,
                13952,
                11586,
                [
                    ("view_item", "micro", 6057, 5017, -0.003, -0.048, 0.043, 1.0, False),
                    ("purchase", "macro", 329, 267, -0.023, -0.291, 0.245, 1.0, False),
                ],
            ),
            (
                "pricing_page",
                "no detectable difference, minimum detectable lift 34 %",
                0.62,
                False,
                2010,
                1990,
                [
                    ("sign_up", "micro", 120, 131, 0.103, -0.25, 0.46, 1.0, False),
                    ("purchase", "macro", 48, 44, -0.074, -0.5, 0.35, 1.0, False),
                ],
            ),
        ]
        readout = []
        for name, verdict, srm_p, srm_flag, n_c, n_t, convs in experiments:
            for conv, tier, x_c, x_t, lift, lo, hi, p, sig in convs:
                for variant, control, n, x in (("control", True, n_c, x_c), ("treatment", False, n_t, x_t)):
                    rate = x / n
                    half = 1.96 * (rate * (1 - rate) / n) ** 0.5
                    readout.append(
                        (name, variant, control, f"STW-{name}-{variant}", conv, tier, start_date, end_date, n, x,
                         rate, rate - half, rate + half, None if control else lift, None if control else lo,
                         None if control else hi, None if control else p, None if control else sig,
                         None if control else lift - 0.6 * (lift - lo), None if control else lift + 0.6 * (hi - lift),
                         None if control else min(1.0, p * 10), None if control else 0.2, 0.5, n / (n_c + n_t),
                         srm_p, srm_flag, verdict, False)
                    )  # fmt: skip
        con.executemany(
            "INSERT INTO marts.experiment_readout VALUES (" + ", ".join(["?"] * 28) + ")", readout
        )
        # Issue 15: two alerts in the report's week (one delivered), one the week before; time to convert for
        # three channels (Kaplan-Meier shapes: a median, quartiles and shares that only grow along the curve).
        con.execute(
            """
            INSERT INTO marts.conversion_anomalies BY NAME
            SELECT * FROM (VALUES
                ('2026-11-18|123456789|conversion|add_to_cart', DATE '2026-11-18', '123456789', 'conversion',
                 'add_to_cart', NULL, NULL, 'sessions', 0, 2000, 0.0, 221.0, 0.11, 152.0, 290.0, -11.2, 'zero', 'high', -1.0,
                 false, NULL::TIMESTAMP),
                ('2026-11-20|123456789|funnel_step|purchase|4', DATE '2026-11-20', '123456789', 'funnel_step',
                 'purchase', 'purchase', 4, 'begin_checkout', 13, 63, 0.206, 33.6, 0.533, 19.0, 48.3, -4.9, 'drop',
                 'high', -0.61, true, TIMESTAMP '2026-11-21 07:00:00'),
                ('2026-11-12|123456789|conversion|search', DATE '2026-11-12', '123456789', 'conversion',
                 'search', NULL, NULL, 'sessions', 400, 2000, 0.2, 300.0, 0.15, 240.0, 360.0, 4.1, 'spike', 'medium', 0.33,
                 true, TIMESTAMP '2026-11-13 07:00:00')
            ) AS t(anomaly_id, date, source_id, series_type, conversion_name, funnel_name, step_index, denominator_name,
                   observed, denominator, observed_rate, expected, expected_rate, interval_low, interval_high, z_score,
                   kind, severity, relative_change, delivered, delivered_at)
            """
        )
        con.execute(
            """
            INSERT INTO marts.time_to_convert_curve BY NAME
            SELECT channel, 'contact_created' AS from_step, 'lifecycle_customer' AS to_step, day::INTEGER AS day,
                to_days(day::INTEGER) AS elapsed, (1 - exp(-day / scale)) * cap AS share_converted,
                greatest((1 - exp(-day / scale)) * cap - 0.01, 0) AS share_converted_ci_low,
                least((1 - exp(-day / scale)) * cap + 0.01, 1) AS share_converted_ci_high,
                round((1 - exp(-day / scale)) * cap * n)::BIGINT AS events_to_date
            FROM (VALUES ('All channels', 20.0, 0.6, 1000), ('Email', 10.0, 0.7, 200), ('Paid Social', 40.0, 0.5, 150))
                AS c(channel, scale, cap, n),
                range(0, 91) AS r(day)
            """
        )
        con.execute(
            """
            INSERT INTO marts.time_to_convert BY NAME
            SELECT channel, 'contact_created' AS from_step, 'lifecycle_customer' AS to_step, n AS contacts_at_risk,
                round(cap * n * 0.9)::BIGINT AS events, (n - round(cap * n * 0.9))::BIGINT AS censored,
                -scale * ln(1 - 0.5 / cap) AS median_days, -scale * ln(1 - 0.45 / cap) AS median_ci_low_days,
                -scale * ln(1 - 0.55 / cap) AS median_ci_high_days, -scale * ln(1 - 0.25 / cap) AS p25_days,
                NULL::DOUBLE AS p75_days, (1 - exp(-7 / scale)) * cap AS converted_by_7d,
                (1 - exp(-30 / scale)) * cap AS converted_by_30d, (1 - exp(-90 / scale)) * cap AS converted_by_90d,
                90.0 AS max_follow_up_days, TIMESTAMP '2026-11-23 04:00:00' AS censor_at_utc
            FROM (VALUES ('All channels', 20.0, 0.6, 1000), ('Email', 10.0, 0.7, 200), ('Paid Social', 40.0, 0.5, 150))
                AS c(channel, scale, cap, n)
            """
        )
        for table in ("dims_channel", "dims_device", "dims_country", "dims_vt", "fixture_catalog"):
            con.execute(f"DROP TABLE {table}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fixture_marts(tmp_path_factory) -> Path:
    return build_fixture_marts(tmp_path_factory.mktemp("marts") / "analyst.duckdb", end_date=PERIOD_END)


@pytest.fixture(scope="session")
def fixture_export(fixture_marts, tmp_path_factory):
    from reporting import run_export

    return run_export(fixture_marts, tmp_path_factory.mktemp("exports"), period_end=PERIOD_END, sandbox=True)


@dataclass
class PipelineMarts:
    path: Path
    published: bool  # False: the run stopped before publish; the marts come from its working file
    log: str


@pytest.fixture(scope="session")
def pipeline_marts(tmp_path_factory) -> PipelineMarts:
    """Marts built by the real pipeline: `python -m orchestration.demo` over the sandbox (GA4 and HubSpot
    through the official SDKs, raw -> staging -> marts in DuckDB, publish), in a child process with its
    own files, Dagster home and sandbox, so nothing leaks into this process's environment."""
    root = tmp_path_factory.mktemp("pipeline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWISE_") and k not in CREDENTIAL_VARS}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "STEPWISE_WORKING_DB": str(root / "working" / "stepwise.duckdb"),
            "STEPWISE_ANALYST_DB": str(root / "analyst" / "stepwise.duckdb"),
            "STEPWISE_EXPORT_DIR": str(root / "exports"),
            "STEPWISE_START_DATE": "2026-10-01",
            "STEPWISE_TIME_ZONE": "America/New_York",
            "STEPWISE_SANDBOX_PRESET": PIPELINE_STORE["preset"],
            "STEPWISE_SANDBOX_SEED": str(PIPELINE_STORE["seed"]),
            "STEPWISE_SANDBOX_END_DATE": PERIOD_END.isoformat(),
            "STEPWISE_SANDBOX_DAYS": str(PIPELINE_STORE["days"]),
            "STEPWISE_SANDBOX_SESSIONS_PER_DAY": str(PIPELINE_STORE["sessions_per_day"]),
            "STEPWISE_SANDBOX_REVISIONS": "off",
            "STEPWISE_DUCKDB_THREADS": "2",
            "STEPWISE_DUCKDB_MEMORY_LIMIT": "1GB",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.demo", "--no-export"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    log = done.stdout[-4000:] + done.stderr[-4000:]
    analyst, working = Path(env["STEPWISE_ANALYST_DB"]), Path(env["STEPWISE_WORKING_DB"])
    if done.returncode == 0 and analyst.is_file():
        return PipelineMarts(analyst, True, log)
    if working.is_file():
        # The run built the marts but stopped before publishing (e.g. a blocking check). The export
        # reads the same tables either way; say so in the test output rather than hide it.
        copy = root / "built-not-published.duckdb"
        shutil.copyfile(working, copy)
        con = duckdb.connect(str(copy), read_only=True)
        try:
            present = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
                ).fetchall()
            }
        finally:
            con.close()
        if {"segment_summary", "micro_macro_lift", "channel_funnel_daily"} <= present:
            print(
                f"\n[exports] the demo pipeline did not publish (rc={done.returncode}); using its working file:\n{log[-1500:]}"
            )
            return PipelineMarts(copy, False, log)
    pytest.skip(f"the real pipeline did not build the marts (rc={done.returncode}): {log[-1500:]}")


@pytest.fixture(scope="session")
def pipeline_export(pipeline_marts, tmp_path_factory):
    from reporting import run_export

    return run_export(pipeline_marts.path, tmp_path_factory.mktemp("pipeline_exports"), period_end=PERIOD_END)


@pytest.fixture(scope="session")
def pipeline_store():
    """The same synthetic store the pipeline's sandbox served (same preset, seed, dates and size)."""
    from connectors.sandbox.store import build_store

    p = PIPELINE_STORE
    return build_store(
        p["preset"],
        seed=p["seed"],
        end_date=p["end_date"],
        days=p["days"],
        sessions_per_day=p["sessions_per_day"],
    )


# --- headless Chromium ---------------------------------------------------------------------------


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is needed to render the report: `apt-get install -y chromium` (make system-deps)")


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [
        chromium_binary(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-extensions",
        *args,
    ]
    return subprocess.run(command, capture_output=True, timeout=timeout, check=False)


def dump_dom(html_file: Path) -> str:
    done = chromium("--dump-dom", html_file.resolve().as_uri())
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8")


def screenshot(html_file: Path, png: Path, width: int = 1100, height: int = 5600) -> Path:
    done = chromium(f"--window-size={width},{height}", f"--screenshot={png}", html_file.resolve().as_uri())
    assert done.returncode == 0 and png.is_file(), done.stderr.decode(errors="replace")[-2000:]
    return png


# --- a small DOM over the rendered page ----------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        out = list(self.parts)
        for c in self.children:
            out.append(c.text)
        return " ".join(" ".join(out).split())

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str | bool) -> list[Node]:
        found = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if all(
                (k.replace("_", "-") in n.attrs) if want is True else n.attrs.get(k.replace("_", "-")) == want
                for k, want in attrs.items()
            ):
                found.append(n)
        return found

    def find(self, tag: str | None = None, **attrs: str | bool) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'}> with {attrs} in the rendered page"
        return found[0]

    def by_id(self, element_id: str) -> Node:
        return self.find(None, id=element_id)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: (v if v is not None else "") for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse_dom(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


@pytest.fixture(scope="session")
def browser():
    """The Chromium helpers, as a fixture (test modules cannot import conftest by name)."""

    class Browser:
        dump_dom = staticmethod(dump_dom)
        screenshot = staticmethod(screenshot)
        parse_dom = staticmethod(parse_dom)

    return Browser


# The report tests check the rendered page against SQL over the marts it came from, for both sources of
# marts: the real pipeline's over the sandbox, and the hand-made fixture marts.
@pytest.fixture(scope="module", params=["pipeline", "fixture"])
def source(request):
    """(export result, analyst file) for each source of marts."""
    if request.param == "pipeline":
        return request.getfixturevalue("pipeline_export"), request.getfixturevalue("pipeline_marts").path
    return request.getfixturevalue("fixture_export"), request.getfixturevalue("fixture_marts")


@pytest.fixture(scope="module")
def rendered(source, browser):
    """The DOM of the summary, as headless Chromium renders it."""
    export, _ = source
    return browser.parse_dom(browser.dump_dom(export.report_path))


@pytest.fixture(scope="module")
def marts(source):
    """The analyst file the summary was written from, read-only."""
    con = duckdb.connect(str(source[1]), read_only=True)
    yield con
    con.close()
