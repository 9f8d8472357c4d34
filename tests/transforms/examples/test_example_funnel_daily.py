"""marts.funnel_daily, worked example: each catalog funnel, step by step, per day.

The default catalog has two funnels: 'purchase' (GA4 events view_item -> add_to_cart -> begin_checkout ->
purchase) and 'crm' (HubSpot lifecycle stages lead -> MQL -> SQL -> opportunity -> customer).
GA4 steps count EVENTS of the day, summed over every segment; HubSpot steps count the contacts of a CREATION
cohort (creation date in the property's time zone) that reached that step or any later one by now.
"""

from __future__ import annotations

import pytest

GIVEN_WEB_SESSIONS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | sessions | engaged_sessions | total_users | new_users
2026-11-02 | Organic Search                | desktop         | Germany | new              | 300      | 200              | 280         | 280
2026-11-02 | Email                         | mobile          | France  | returning        | 100      | 80               | 90          | 0
2026-11-03 | Organic Search                | desktop         | Germany | new              | 200      | 120              | 190         | 190
2026-11-04 | Organic Search                | desktop         | Germany | new              | 150      | 90               | 140         | 140
"""

GIVEN_EVENTS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | event_name     | event_count | total_users | event_value
# 2026-11-02: a well-behaved day; view_item comes from two segments (60 + 40: steps add up over segments)
2026-11-02 | Organic Search                | desktop         | Germany | new              | view_item      | 60          | 50          | 0
2026-11-02 | Email                         | mobile          | France  | returning        | view_item      | 40          | 30          | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | add_to_cart    | 30          | 25          | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | begin_checkout | 12          | 12          | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | purchase       | 9           | 9           | 450
# page_view is not a catalog conversion: no funnel sees it
2026-11-02 | Organic Search                | desktop         | Germany | new              | page_view      | 900         | 280         | 0
# 2026-11-03: add_to_cart missing altogether (a broken tag), and more purchases than checkouts
2026-11-03 | Organic Search                | desktop         | Germany | new              | view_item      | 50          | 45          | 0
2026-11-03 | Organic Search                | desktop         | Germany | new              | begin_checkout | 5           | 5           | 0
2026-11-03 | Organic Search                | desktop         | Germany | new              | purchase       | 6           | 6           | 300
# 2026-11-04: sessions but no conversion events at all
"""

# created 2026-11-02 10:00 local (America/New_York = UTC-5 in November) unless said otherwise
GIVEN_CONTACTS = """
id | created_at           | createdate               | lifecyclestage         | hs_analytics_source | hs_v2_date_entered_lead  | hs_v2_date_entered_marketingqualifiedlead | hs_v2_date_entered_salesqualifiedlead | hs_v2_date_entered_opportunity | hs_v2_date_entered_customer | hs_merged_object_ids | archived | merged_into
1  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | salesqualifiedlead     | ORGANIC_SEARCH      | 2026-11-02T15:00:00.000Z | 2026-11-03T15:00:00.000Z                  | 2026-11-04T15:00:00.000Z              |                                |                             | 5                    | false    |
# 2: MQL skipped, went straight to SQL
2  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | salesqualifiedlead     | EMAIL_MARKETING     | 2026-11-02T15:00:00.000Z |                                           | 2026-11-05T15:00:00.000Z              |                                |                             |                      | false    |
3  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | lead                   | PAID_SEARCH         | 2026-11-02T15:00:00.000Z |                                           |                                       |                                |                             |                      | false    |
# 4: lead, then customer directly (MQL, SQL and opportunity never recorded)
4  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | customer               | DIRECT_TRAFFIC      | 2026-11-02T15:00:00.000Z |                                           |                                       |                                | 2026-11-09T15:00:00.000Z    |                      | false    |
# 5: merged into 1 (it reached opportunity before the merge): never counted, its survivor stands for it
5  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | opportunity            | ORGANIC_SEARCH      | 2026-11-02T15:00:00.000Z | 2026-11-02T16:00:00.000Z                  | 2026-11-02T17:00:00.000Z              | 2026-11-02T18:00:00.000Z       |                             |                      | true     | 1
# 6: archived (deleted) after reaching MQL: still counted, its entries happened
6  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | marketingqualifiedlead | REFERRALS           | 2026-11-02T15:00:00.000Z | 2026-11-06T15:00:00.000Z                  |                                       |                                |                             |                      | true     |
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


COLUMNS = "date, step_index, step_name, count, count_unit, rate_from_previous, rate_from_first, drop_off, drop_off_count"


def test_ga4_purchase_funnel_counts_events_per_day(example):
    example.expect(
        f"SELECT {COLUMNS} FROM marts.funnel_daily WHERE funnel_name = 'purchase' ORDER BY date, step_index",
        """
        date       | step_index | step_name      | count | count_unit | rate_from_previous | rate_from_first | drop_off | drop_off_count
        # step 1 has no previous step; its rate from the first step is 1
        2026-11-02 | 1          | view_item      | 100   | events     | NULL               | 1               | NULL     | NULL
        # 30 / 100 carts per view: 70 % lost
        2026-11-02 | 2          | add_to_cart    | 30    | events     | 0.3                | 0.3             | 0.7      | 70
        2026-11-02 | 3          | begin_checkout | 12    | events     | 0.4                | 0.12            | 0.6      | 18
        2026-11-02 | 4          | purchase       | 9     | events     | 0.75               | 0.09            | 0.25     | 3
        2026-11-03 | 1          | view_item      | 50    | events     | NULL               | 1               | NULL     | NULL
        # a step without events still has its row, count 0: everything lost
        2026-11-03 | 2          | add_to_cart    | 0     | events     | 0                  | 0               | 1        | 50
        # no rate from a previous step of 0 events; the drop-off count turns negative
        2026-11-03 | 3          | begin_checkout | 5     | events     | NULL               | 0.1             | NULL     | -5
        # GA4 events are not nested: 6 purchases over 5 checkouts is no proportion (NULL, not capped at 1)
        2026-11-03 | 4          | purchase       | 6     | events     | NULL               | 0.12            | NULL     | -1
        # a day with sessions but no events: every step 0, no rates at all
        2026-11-04 | 1          | view_item      | 0     | events     | NULL               | NULL            | NULL     | NULL
        2026-11-04 | 2          | add_to_cart    | 0     | events     | NULL               | NULL            | NULL     | 0
        2026-11-04 | 3          | begin_checkout | 0     | events     | NULL               | NULL            | NULL     | 0
        2026-11-04 | 4          | purchase       | 0     | events     | NULL               | NULL            | NULL     | 0
        """,
    )


def test_crm_funnel_counts_the_creation_cohort_at_its_deepest_step(example):
    example.expect(
        f"SELECT {COLUMNS} FROM marts.funnel_daily WHERE funnel_name = 'crm' ORDER BY date, step_index",
        """
        date       | step_index | step_name             | count | count_unit                        | rate_from_previous | rate_from_first | drop_off | drop_off_count
        # cohort of 2026-11-02: contacts 1, 2, 3, 4 and the archived 6 (merged-away 5 left out)
        2026-11-02 | 1          | lifecycle_lead        | 5     | contacts (cohort by created date) | NULL               | 1               | NULL     | NULL
        # MQL: 1, 6, and 2 and 4, who skipped it but reached a later stage
        2026-11-02 | 2          | lifecycle_mql         | 4     | contacts (cohort by created date) | 0.8                | 0.8             | 0.2      | 1
        # SQL: 1, 2, and 4 (customer)
        2026-11-02 | 3          | lifecycle_sql         | 3     | contacts (cohort by created date) | 0.75               | 0.6             | 0.25     | 1
        # opportunity: only 4 (5 reached it, but it was merged away)
        2026-11-02 | 4          | lifecycle_opportunity | 1     | contacts (cohort by created date) | 0.333333           | 0.2             | 0.666667 | 2
        2026-11-02 | 5          | lifecycle_customer    | 1     | contacts (cohort by created date) | 1                  | 0.2             | 0        | 0
        # days with GA4 data and no contact created: every CRM step 0 (the cohort's later stage dates do not
        # count on their own days: a cohort is dated by creation)
        2026-11-03 | 1          | lifecycle_lead        | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | NULL
        2026-11-03 | 2          | lifecycle_mql         | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-03 | 3          | lifecycle_sql         | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-03 | 4          | lifecycle_opportunity | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-03 | 5          | lifecycle_customer    | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-04 | 1          | lifecycle_lead        | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | NULL
        2026-11-04 | 2          | lifecycle_mql         | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-04 | 3          | lifecycle_sql         | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-04 | 4          | lifecycle_opportunity | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        2026-11-04 | 5          | lifecycle_customer    | 0     | contacts (cohort by created date) | NULL               | NULL            | NULL     | 0
        """,
    )


def test_every_funnel_stays_in_its_source_system(example):
    example.expect(
        "SELECT funnel_name, source_system, count(*) AS rows FROM marts.funnel_daily GROUP BY ALL ORDER BY 1",
        """
        funnel_name | source_system | rows
        # 5 CRM steps x 3 dates (GA4 dates and the creation date)
        crm         | hubspot       | 15
        # 4 GA4 steps x 3 dates with GA4 sessions
        purchase    | ga4           | 12
        """,
    )
