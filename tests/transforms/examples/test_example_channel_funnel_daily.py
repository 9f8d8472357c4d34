"""marts.channel_funnel_daily, worked example: web to CRM per day and channel.

GA4 columns come from the GA4 reports of the day, on GA4's default channel groups (labels matched without
regard to case or outer spaces; an unknown label is 'Unassigned', GA4's '(other)' row stays '(other)').
HubSpot columns put each record on the channel its original source (hs_analytics_source) maps to in the
channel mapping file (unmapped or empty: 'Unassigned') and on the day of the event in the GA4 property's time
zone (America/New_York here: 03:00 UTC is 22:00 the day before).
"""

from __future__ import annotations

import pytest

GIVEN_WEB_SESSIONS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | sessions | engaged_sessions | total_users | new_users
# GA4 spelling varies: ' organic search ' is Organic Search
2026-11-02 |  organic search               | desktop         | Germany | new              | 100      | 60               | 90          | 90
2026-11-02 | Email                         | mobile          | France  | returning        | 50       | 30               | 45          | 0
# not a GA4 default channel group: Unassigned
2026-11-02 | Some New Group                | desktop         | Germany | new              | 10       | 2                | 10          | 10
# GA4's row of the long tail, kept apart
2026-11-02 | (other)                       | desktop         | Germany | new              | 5        | 1                | 5           | 5
"""

GIVEN_EVENTS = """
date       | session_default_channel_group | device_category | country | new_vs_returning | event_name    | event_count | total_users | event_value
2026-11-02 | Organic Search                | desktop         | Germany | new              | view_item     | 40          | 30          | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | search        | 10          | 8           | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | generate_lead | 3           | 3           | 0
2026-11-02 | Organic Search                | desktop         | Germany | new              | purchase      | 2           | 2           | 99.5
# not in the catalog: neither micro nor macro
2026-11-02 | Organic Search                | desktop         | Germany | new              | page_view     | 500         | 90          | 0
2026-11-02 | Email                         | mobile          | France  | returning        | generate_lead | 2           | 2           | 0
"""

GIVEN_CONTACTS = """
id | created_at           | createdate               | hs_analytics_source | lifecyclestage         | hs_v2_date_entered_lead  | hs_v2_date_entered_marketingqualifiedlead | hs_v2_date_entered_customer | hs_merged_object_ids | archived | merged_into
1  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | ORGANIC_SEARCH      | customer               | 2026-11-02T15:00:00.000Z | 2026-11-03T15:00:00.000Z                  | 2026-11-05T15:00:00.000Z    | 4                    | false    |
2  | 2026-11-02T16:00:00Z | 2026-11-02T16:00:00.000Z | ORGANIC_SEARCH      | lead                   | 2026-11-02T16:00:00.000Z |                                           |                             |                      | false    |
# 3: created 03:00 UTC on Nov 3 = 22:00 on Nov 2 in New York
3  | 2026-11-03T03:00:00Z | 2026-11-03T03:00:00.000Z | EMAIL_MARKETING     | lead                   | 2026-11-03T03:00:00.000Z |                                           |                             |                      | false    |
# 4: merged into 1: left out (1 stands for it)
4  | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z | EMAIL_MARKETING     | lead                   | 2026-11-02T15:00:00.000Z |                                           |                             |                      | true     | 1
# 5: a source the mapping file does not name
5  | 2026-11-02T17:00:00Z | 2026-11-02T17:00:00.000Z | SOMETHING_NEW       | lead                   | 2026-11-02T17:00:00.000Z |                                           |                             |                      | false    |
# 6: archived, returned without its source
6  | 2026-11-02T18:00:00Z | 2026-11-02T18:00:00.000Z |                     | subscriber             |                          |                                           |                             |                      | true     |
"""

GIVEN_DEALS = """
id  | created_at           | contact_ids | pipeline | dealstage   | amount  | closedate                | hs_is_closed_won
# won on Nov 5: on contact 1's channel
d1  | 2026-11-03T15:00:00Z | ["1"]       | default  | closedwon   | 1200.50 | 2026-11-05T15:00:00.000Z | true
# lost the same day: not a deal won
d2  | 2026-11-03T15:00:00Z | ["1"]       | default  | closedlost  | 800     | 2026-11-05T15:00:00.000Z | false
# won, but no associated contact: the unmapped channel
d3  | 2026-11-03T15:00:00Z | []          | default  | closedwon   | 300     | 2026-11-05T16:00:00.000Z | true
"""


@pytest.fixture(scope="module")
def example(new_example):
    ex = new_example()
    ex.ga4("web_sessions", GIVEN_WEB_SESSIONS)
    ex.ga4("events", GIVEN_EVENTS)
    ex.hubspot_lifecycle_stages()
    ex.hubspot("contacts", GIVEN_CONTACTS)
    ex.hubspot("deals", GIVEN_DEALS)
    ex.build()
    return ex


def test_web_and_crm_side_by_side_per_day_and_channel(example):
    example.expect(
        "SELECT * FROM marts.channel_funnel_daily ORDER BY date, channel",
        """
        date       | channel        | sessions | engaged_sessions | micro_conversions | leads | web_macro_conversions | web_revenue | contacts_created | crm_leads | mqls | sqls | opportunities | customers | deals_won | revenue | property_id | portal_id
        # one property and one portal: every row carries both (web figures of p1 beside CRM figures of h1)
        2026-11-02 | (other)        | 5        | 1                | 0                 | 0     | 0                     | 0           | 0                | 0         | 0    | 0    | 0             | 0         | 0         | 0   | p1          | h1
        # contact 3 (22:00 local on Nov 2); the merged-away 4 is not counted
        2026-11-02 | Email          | 50       | 30               | 2                 | 2     | 0                     | 0           | 1                | 1         | 0    | 0    | 0             | 0         | 0         | 0   | p1          | h1
        # micro = view_item 40 + search 10 + generate_lead 3 (a lead is also a micro conversion); macro = purchase
        2026-11-02 | Organic Search | 100      | 60               | 53                | 3     | 2                     | 99.5        | 2                | 2         | 0    | 0    | 0             | 0         | 0         | 0   | p1          | h1
        # contact 5 (unmapped source) and the archived 6 (no source); only 5 entered lead
        2026-11-02 | Unassigned     | 10       | 2                | 0                 | 0     | 0                     | 0           | 2                | 1         | 0    | 0    | 0             | 0         | 0         | 0   | p1          | h1
        # stages are counted on the day they were entered, not on the creation day
        2026-11-03 | Organic Search | 0        | 0                | 0                 | 0     | 0                     | 0           | 0                | 0         | 1    | 0    | 0             | 0         | 0         | 0   | p1          | h1
        # d1 won (d2 lost is left out); contact 1 became customer the same day
        2026-11-05 | Organic Search | 0        | 0                | 0                 | 0     | 0                     | 0           | 0                | 0         | 0    | 0    | 0             | 1         | 1         | 1200.5   | p1          | h1
        # d3: a won deal without contact
        2026-11-05 | Unassigned     | 0        | 0                | 0                 | 0     | 0                     | 0           | 0                | 0         | 0    | 0    | 0             | 0         | 1         | 300   | p1          | h1
        """,
    )
