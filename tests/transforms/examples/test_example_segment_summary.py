"""marts.segment_summary, worked example: which segments are most receptive, each against the REST of the
traffic (all other values of the same dimension).

GA4 rows by channel, device, country and visitor type count user-days: each day's users of the segment (the
web_sessions report's totalUsers), summed over the window's days, and the users with the conversion that day
(the events report's totalUsers). The window ends `unsettled_days` (2) before the last GA4 date, because GA4
still revises its most recent days. A row is tested only when it passes the minimum-sample gate (100 units in
the segment, 100 in the rest, 10 conversions on both sides together); tested rows of a family (window,
source, conversion, dimension) get Benjamini-Hochberg q-values and a rank by the lower end of the lift
interval. HubSpot rows count contacts created in the window and those who have reached the conversion by now.
"""

from __future__ import annotations

import pytest

# Users per day: Email 200, Organic Search 400, Paid Social 30 (all desktop, Germany, new visitors).
GIVEN_WEB_SESSIONS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | sessions | engaged_sessions | total_users | new_users
2026-11-01 | Email                         | desktop         | Germany | new              | 220      | 150              | 200         | 200
2026-11-01 | Organic Search                | desktop         | Germany | new              | 440      | 300              | 400         | 400
2026-11-01 | Paid Social                   | desktop         | Germany | new              | 33       | 20               | 30          | 30
2026-11-02 | Email                         | desktop         | Germany | new              | 220      | 150              | 200         | 200
2026-11-02 | Organic Search                | desktop         | Germany | new              | 440      | 300              | 400         | 400
2026-11-02 | Paid Social                   | desktop         | Germany | new              | 33       | 20               | 30          | 30
2026-11-03 | Email                         | desktop         | Germany | new              | 220      | 150              | 200         | 200
2026-11-03 | Organic Search                | desktop         | Germany | new              | 440      | 300              | 400         | 400
2026-11-03 | Paid Social                   | desktop         | Germany | new              | 33       | 20               | 30          | 30
# the last two days are not settled yet: outside the window whatever they hold
2026-11-04 | Email                         | desktop         | Germany | new              | 220      | 150              | 200         | 200
2026-11-05 | Email                         | desktop         | Germany | new              | 220      | 150              | 200         | 200
"""

# Users who purchased, per day and channel (Paid Social had none on Nov 2: no row).
GIVEN_EVENTS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | event_name | event_count | total_users | event_value
2026-11-01 | Email                         | desktop         | Germany | new              | purchase   | 21          | 20          | 1000
2026-11-02 | Email                         | desktop         | Germany | new              | purchase   | 23          | 22          | 1100
2026-11-03 | Email                         | desktop         | Germany | new              | purchase   | 19          | 18          | 900
2026-11-01 | Organic Search                | desktop         | Germany | new              | purchase   | 20          | 20          | 1000
2026-11-02 | Organic Search                | desktop         | Germany | new              | purchase   | 21          | 20          | 1000
2026-11-03 | Organic Search                | desktop         | Germany | new              | purchase   | 20          | 20          | 1000
2026-11-01 | Paid Social                   | desktop         | Germany | new              | purchase   | 1           | 1           | 50
2026-11-03 | Paid Social                   | desktop         | Germany | new              | purchase   | 2           | 2           | 100
# every Email user buying on the unsettled days would double Email's rate, were they counted
2026-11-04 | Email                         | desktop         | Germany | new              | purchase   | 200         | 200         | 9000
2026-11-05 | Email                         | desktop         | Germany | new              | purchase   | 200         | 200         | 9000
"""

GIVEN_CONTACTS = """
id | created_at           | createdate               | hs_analytics_source | country | lifecyclestage | hs_v2_date_entered_lead  | hs_v2_date_entered_customer
1  | 2026-11-01T15:00:00Z | 2026-11-01T15:00:00.000Z | EMAIL_MARKETING     | Germany | customer       | 2026-11-01T15:00:00.000Z | 2026-11-03T15:00:00.000Z
2  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | EMAIL_MARKETING     | France  | lead           | 2026-11-02T15:00:00.000Z |
3  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | ORGANIC_SEARCH      | Germany | lead           | 2026-11-02T15:00:00.000Z |
# created on an unsettled day: outside the window
4  | 2026-11-04T15:00:00Z | 2026-11-04T15:00:00.000Z | ORGANIC_SEARCH      | Germany | customer       | 2026-11-04T15:00:00.000Z | 2026-11-04T16:00:00.000Z
"""


@pytest.fixture(scope="module")
def example(new_example):
    ex = new_example()
    ex.ga4("web_sessions", GIVEN_WEB_SESSIONS)
    ex.ga4("events", GIVEN_EVENTS)
    ex.hubspot_lifecycle_stages()
    ex.hubspot("contacts", GIVEN_CONTACTS)
    ex.build()
    return ex


def test_ga4_channels_against_the_rest(example):
    example.expect(
        "SELECT window_start, window_end, segment_value, unit, units, conversions, rest_units, rest_conversions, "
        "rate, rest_rate, lift, tested, gate_reason, test_method, rank "
        "FROM marts.segment_summary WHERE source_system = 'ga4' AND conversion_name = 'purchase' "
        "AND segment_dimension = 'channel' ORDER BY segment_value",
        """
        window_start | window_end | segment_value  | unit      | units | conversions | rest_units | rest_conversions | rate      | rest_rate | lift     | tested | gate_reason                        | test_method   | rank
        # 3 days x 200 users, 20 + 22 + 18 buyers; the rest is Organic Search and Paid Social: (60 + 3) / (1200 + 90)
        2026-11-01   | 2026-11-03 | Email          | user_days | 600   | 60          | 1290       | 63               | 0.1       | 0.0488372 | 2.04762  | true   | NULL                               | t_day_cluster | 1
        2026-11-01   | 2026-11-03 | Organic Search | user_days | 1200  | 60          | 690        | 63               | 0.05      | 0.0913043 | 0.547619 | true   | NULL                               | t_day_cluster | 2
        # 90 user-days: below the gate, so it has rates and a lift but no test and no rank
        2026-11-01   | 2026-11-03 | Paid Social    | user_days | 90    | 3           | 1800       | 120              | 0.0333333 | 0.0666667 | 0.5      | false  | segment has fewer than 100 units   | NULL          | NULL
        """,
    )


def test_a_dimension_with_one_value_has_no_rest_to_compare_with(example):
    example.expect(
        "SELECT segment_dimension, segment_value, units, rest_units, tested, gate_reason, p_value "
        "FROM marts.segment_summary WHERE source_system = 'ga4' AND conversion_name = 'purchase' "
        "AND segment_dimension IN ('country', 'device_category', 'visitor_type') ORDER BY segment_dimension",
        """
        segment_dimension | segment_value | units | rest_units | tested | gate_reason                   | p_value
        country           | Germany       | 1890  | 0          | false  | rest has fewer than 100 units | NULL
        device_category   | desktop       | 1890  | 0          | false  | rest has fewer than 100 units | NULL
        visitor_type      | new           | 1890  | 0          | false  | rest has fewer than 100 units | NULL
        """,
    )


def test_q_values_are_benjamini_hochberg_within_the_family_and_intervals_hold_the_lift(example):
    rows = example.con.execute(
        "SELECT segment_value, p_value, q_value, lift, lift_ci_low, lift_ci_high, significant "
        "FROM marts.segment_summary WHERE source_system = 'ga4' AND conversion_name = 'purchase' "
        "AND segment_dimension = 'channel' AND tested ORDER BY p_value"
    ).fetchall()
    assert sorted(r[0] for r in rows) == ["Email", "Organic Search"]  # Paid Social is below the gate
    # Two tested rows: q of the smaller p is min(2 p1, p2), q of the larger is p2.
    (_, p1, q1, *_), (_, p2, q2, *_) = rows
    assert q2 == pytest.approx(p2) and q1 == pytest.approx(min(2 * p1, p2))
    for _, _p, q, lift, low, high, significant in rows:
        assert low < lift < high
        # significant only with q < 0.05 and the whole interval outside the practical band 0.95-1.05
        assert significant == (q < 0.05 and (low > 1.05 or high < 0.95))


def test_hubspot_rows_count_contacts_created_in_the_window(example):
    example.expect(
        "SELECT conversion_name, segment_dimension, segment_value, unit, units, conversions, rest_units, "
        "rest_conversions, tested, gate_reason FROM marts.segment_summary WHERE source_system = 'hubspot' "
        "AND conversion_name IN ('all', 'lifecycle_customer') ORDER BY 1, 2, 3",
        """
        conversion_name    | segment_dimension | segment_value  | unit     | units | conversions | rest_units | rest_conversions | tested | gate_reason
        # 'all' = any macro conversion. Contact 4 (created on an unsettled day) is outside the window.
        # original_source rows are left out: here each source maps to its own channel (a duplicate family).
        all                | channel           | Email          | contacts | 2     | 1           | 1          | 0                | false  | segment has fewer than 100 units
        all                | channel           | Organic Search | contacts | 1     | 0           | 2          | 1                | false  | segment has fewer than 100 units
        all                | country           | France         | contacts | 1     | 0           | 2          | 1                | false  | segment has fewer than 100 units
        all                | country           | Germany        | contacts | 2     | 1           | 1          | 0                | false  | segment has fewer than 100 units
        lifecycle_customer | channel           | Email          | contacts | 2     | 1           | 1          | 0                | false  | segment has fewer than 100 units
        lifecycle_customer | channel           | Organic Search | contacts | 1     | 0           | 2          | 1                | false  | segment has fewer than 100 units
        lifecycle_customer | country           | France         | contacts | 1     | 0           | 2          | 1                | false  | segment has fewer than 100 units
        lifecycle_customer | country           | Germany        | contacts | 2     | 1           | 1          | 0                | false  | segment has fewer than 100 units
        """,
    )


# A second example: HubSpot contacts enough to pass the gate. Each source's contacts are created on Nov 2; the
# first `reached_mql` of them entered MQL, the first `reached_customer` of those became customers.
GIVEN_COHORTS = """
hs_analytics_source | contacts | reached_mql | reached_customer
EMAIL_MARKETING     | 120      | 60          | 6
ORGANIC_SEARCH      | 150      | 45          | 3
PAID_SOCIAL         | 110      | 22          | 1
"""

GIVEN_WINDOW = """
date       | session_default_channel_group | device_category | country | new_vs_returning | sessions | engaged_sessions | total_users | new_users
# GA4 dates set the window (Nov 1 - Nov 3; Nov 4 and 5 are unsettled)
2026-11-01 | Direct                        | desktop         | Germany | new              | 10       | 5                | 10          | 10
2026-11-05 | Direct                        | desktop         | Germany | new              | 10       | 5                | 10          | 10
"""


def _contacts_from_cohorts(text: str) -> str:
    lines = [
        "id | created_at | createdate | hs_analytics_source | lifecyclestage | hs_v2_date_entered_lead | "
        "hs_v2_date_entered_marketingqualifiedlead | hs_v2_date_entered_customer"
    ]
    next_id = 1
    for line in text.strip().splitlines()[1:]:
        source, contacts, mql, customer = (cell.strip() for cell in line.split("|"))
        for k in range(int(contacts)):
            stage = "customer" if k < int(customer) else "marketingqualifiedlead" if k < int(mql) else "lead"
            mql_at = "2026-11-03T15:00:00.000Z" if k < int(mql) else ""
            customer_at = "2026-11-04T15:00:00.000Z" if k < int(customer) else ""
            lines.append(
                f"{next_id} | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | {source} | {stage} | "
                f"2026-11-02T15:00:00.000Z | {mql_at} | {customer_at}"
            )
            next_id += 1
    return "\n".join(lines)


@pytest.fixture(scope="module")
def crm_example(new_example):
    ex = new_example()
    ex.ga4("web_sessions", GIVEN_WINDOW)
    ex.hubspot_lifecycle_stages()
    ex.hubspot("contacts", _contacts_from_cohorts(GIVEN_COHORTS))
    ex.build()
    return ex


def test_hubspot_rows_past_the_gate_are_tested_per_contact(crm_example):
    crm_example.expect(
        "SELECT conversion_name, segment_value, units, conversions, rest_units, rest_conversions, rate, rest_rate, "
        "lift, test_method, p_value, q_value, rank FROM marts.segment_summary WHERE source_system = 'hubspot' "
        "AND segment_dimension = 'channel' AND conversion_name IN ('lifecycle_mql', 'lifecycle_customer') "
        "ORDER BY conversion_name, rank",
        """
        conversion_name    | segment_value  | units | conversions | rest_units | rest_conversions | rate       | rest_rate | lift     | test_method | p_value     | q_value     | rank
        # 10 customers among 380 contacts: every expected cell of the 2x2 table is below 5, so Fisher's exact
        # test (p: scipy.stats.fisher_exact; q: statsmodels multipletests fdr_bh over the three rows)
        lifecycle_customer | Email          | 120   | 6           | 260        | 4                | 0.05       | 0.0153846 | 3.25     | fisher      | 0.0787726   | 0.236318    | 1
        lifecycle_customer | Organic Search | 150   | 3           | 230        | 7                | 0.02       | 0.0304348 | 0.657143 | fisher      | 0.74595     | 0.74595     | 2
        lifecycle_customer | Paid Social    | 110   | 1           | 270        | 9                | 0.00909091 | 0.0333333 | 0.272727 | fisher      | 0.292614    | 0.43892     | 3
        # 127 MQLs: the pooled two-proportion z-test (p: statsmodels proportions_ztest)
        lifecycle_mql      | Email          | 120   | 60          | 260        | 67               | 0.5        | 0.257692  | 1.9403   | z           | 3.24749e-06 | 9.74246e-06 | 1
        lifecycle_mql      | Organic Search | 150   | 45          | 230        | 82               | 0.3        | 0.356522  | 0.841463 | z           | 0.253576    | 0.253576    | 2
        lifecycle_mql      | Paid Social    | 110   | 22          | 270        | 105              | 0.2        | 0.388889  | 0.514286 | z           | 0.00039999  | 0.000599986 | 3
        """,
    )


def test_original_source_rows_are_left_out_when_sources_are_channels(crm_example):
    # Every source here maps to its own channel: original_source would repeat the channel family.
    crm_example.expect(
        "SELECT segment_dimension, count(*) AS rows FROM marts.segment_summary WHERE source_system = 'hubspot' "
        "GROUP BY 1 ORDER BY 1",
        """
        segment_dimension | rows
        # 3 channels x (the 10 HubSpot catalog conversions: 5 stages, deal won, 4 forms; and 'all')
        channel           | 33
        # one country ('(not set)': the contacts carry none) x 11
        country           | 11
        """,
    )
