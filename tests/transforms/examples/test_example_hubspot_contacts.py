"""staging.hubspot_contacts, worked example: one typed row per HubSpot contact record.

HubSpot sends every property as a string, and timestamps in several spellings; staging turns them into UTC
instants (*_at_utc) and calendar dates in the GA4 property's time zone (America/New_York here, UTC-5 in
November), labels empty values, maps the original source onto a GA4 channel, collects the lifecycle-stage
entries of the stages the portal's properties API lists, and keeps archived and merged-away records (flagged,
for the marts to decide).
"""

from __future__ import annotations

import pytest

from transforms.build import BuildError

GIVEN_CONTACTS = """
id | created_at           | updated_at           | createdate                | lastmodifieddate         | lifecyclestage | hs_analytics_source | country | num_conversion_events | hs_v2_date_entered_lead   | hs_v2_date_entered_marketingqualifiedlead | hs_v2_date_entered_customer | hs_v2_date_entered_trial | hs_v2_date_entered_evangelist | hs_merged_object_ids | archived | merged_into
# 1: the usual spelling (ISO, Z); ' customer ' is trimmed; survivor of 6 (and of 9, a record no longer stored)
1  | 2026-11-02T15:00:00Z | 2026-11-04T14:30:00Z | 2026-11-02T15:00:00.000Z  | 2026-11-04T14:30:00.000Z |  customer      | EMAIL_MARKETING     | Germany | 3                     | 2026-11-02T15:00:00.000Z  | 2026-11-03T15:00:00.000Z                  | 2026-11-04T14:00:00.000Z    |                          |                               | 6; 9                 | false    |
# 2: createdate as epoch milliseconds: 03:00 UTC on Nov 2 is 22:00 on Nov 1 in New York
2  | 2026-11-02T03:00:00Z | 2026-11-02T03:00:00Z | 1793588400000             |                          | lead           | PAID_SEARCH         | France  | 1                     | 2026-11-02T03:00:00.000Z  |                                           |                             |                          |                               |                      | false    |
# 3: nearly empty: record timestamps stand in; empty labels become '(not set)'; a count that is no number is NULL
3  | 2026-11-03T12:00:00Z | 2026-11-05T12:00:00Z |                           |                          |                |                     |         | n/a                   |                           |                                           |                             |                          |                               |                      | false    |
# 4: a date-only createdate is UTC midnight (Nov 4, 19:00 local); a source the mapping file does not name
4  | 2026-11-05T00:00:00Z | 2026-11-05T00:00:00Z | 2026-11-05                | 2026-11-05T01:00:00.000Z | subscriber     | SOMETHING_NEW       | Spain   | 0                     |                           |                                           |                             |                          |                               |                      | false    |
# 5: createdate with an offset; lead RE-ENTERED on Nov 6 after MQL on Nov 3 (HubSpot keeps the last entry);
#    a custom stage 'trial' listed by the portal; 'evangelist' is not listed by the portal, so it is not read
5  | 2026-11-02T15:00:00Z | 2026-11-06T15:00:00Z | 2026-11-02T10:00:00-05:00 | 2026-11-06T15:00:00.000Z | lead           | ORGANIC_SEARCH      | Spain   | 2                     | 2026-11-06T15:00:00.000Z  | 2026-11-03T15:00:00.000Z                  |                             | 2026-11-04T15:00:00.000Z | 2026-11-05T15:00:00.000Z      |                      | false    |
# 6: merged away into 1 (the archived pass returns it with merged_into)
6  | 2026-11-02T16:00:00Z | 2026-11-03T16:00:00Z | 2026-11-02T16:00:00.000Z  |                          | lead           | REFERRALS           | Germany | 1                     | 2026-11-02T16:00:00.000Z  |                                           |                             |                          |                               |                      | true     | 1
# 7: archived (deleted) in HubSpot
7  | 2026-11-02T17:00:00Z | 2026-11-03T17:00:00Z | 2026-11-02T17:00:00.000Z  |                          | lead           | DIRECT_TRAFFIC      | Germany | 1                     | 2026-11-02T17:00:00.000Z  |                                           |                             |                          |                               |                      | true     |
"""

STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "trial",
)


@pytest.fixture(scope="module")
def example(new_example):
    ex = new_example()
    ex.hubspot_lifecycle_stages(STAGES)
    ex.hubspot("contacts", GIVEN_CONTACTS)
    ex.build()
    return ex


def test_instants_are_utc_and_dates_are_property_local(example):
    example.expect(
        "SELECT contact_id, contact_key, created_at_utc, created_date, updated_at_utc "
        "FROM staging.hubspot_contacts ORDER BY contact_key",
        """
        contact_id | contact_key | created_at_utc      | created_date | updated_at_utc
        1          | 1           | 2026-11-02 15:00:00 | 2026-11-02   | 2026-11-04 14:30:00
        # epoch milliseconds; the local date is the day before the UTC one
        2          | 2           | 2026-11-02 03:00:00 | 2026-11-01   | 2026-11-02 03:00:00
        # no createdate / lastmodifieddate properties: the record's created_at / updated_at
        3          | 3           | 2026-11-03 12:00:00 | 2026-11-03   | 2026-11-05 12:00:00
        4          | 4           | 2026-11-05 00:00:00 | 2026-11-04   | 2026-11-05 01:00:00
        # 10:00 at UTC-5 is 15:00 UTC
        5          | 5           | 2026-11-02 15:00:00 | 2026-11-02   | 2026-11-06 15:00:00
        6          | 6           | 2026-11-02 16:00:00 | 2026-11-02   | 2026-11-03 16:00:00
        7          | 7           | 2026-11-02 17:00:00 | 2026-11-02   | 2026-11-03 17:00:00
        """,
    )


def test_labels_sources_and_channels(example):
    example.expect(
        "SELECT contact_id, lifecycle_stage, hs_analytics_source, channel, country, num_conversion_events "
        "FROM staging.hubspot_contacts ORDER BY contact_key",
        """
        contact_id | lifecycle_stage | hs_analytics_source | channel        | country   | num_conversion_events
        # channel mapping file: EMAIL_MARKETING -> Email
        1          | customer        | EMAIL_MARKETING     | Email          | Germany   | 3
        2          | lead            | PAID_SEARCH         | Paid Search    | France    | 1
        # an empty stage is NULL; an empty source and country are '(not set)'; the source maps to unmapped_channel
        3          | NULL            | (not set)           | Unassigned     | (not set) | NULL
        # the raw source is kept; the channel is the mapping's unmapped_channel
        4          | subscriber      | SOMETHING_NEW       | Unassigned     | Spain     | 0
        5          | lead            | ORGANIC_SEARCH      | Organic Search | Spain     | 2
        6          | lead            | REFERRALS           | Referral       | Germany   | 1
        7          | lead            | DIRECT_TRAFFIC      | Direct         | Germany   | 1
        """,
    )


def test_stage_entries_merges_and_archive(example):
    example.expect(
        # stage entries as 'stage@UTC instant', sorted (their order in the list is not part of the spec)
        "SELECT contact_id, "
        "list_sort([e.stage || '@' || strftime(e.entered_at_utc, '%m-%d %H:%M') FOR e IN stage_entries]) AS entries, "
        "merged_object_ids, merged_into, is_archived FROM staging.hubspot_contacts ORDER BY contact_key",
        """
        contact_id | entries                                                          | merged_object_ids | merged_into | is_archived
        # only stages entered; the ids merged into 1 are listed whether stored or not
        1          | [customer@11-04 14:00, lead@11-02 15:00, marketingqualifiedlead@11-03 15:00] | [6, 9] | NULL | false
        2          | [lead@11-02 03:00]                                               | []                | NULL        | false
        3          | []                                                               | []                | NULL        | false
        4          | []                                                               | []                | NULL        | false
        # the lead entry is the LAST one (after MQL), as HubSpot keeps it; the custom stage 'trial' is read
        # because the portal lists it; 'evangelist' is not (the portal does not list it)
        5          | [lead@11-06 15:00, marketingqualifiedlead@11-03 15:00, trial@11-04 15:00] | [] | NULL | false
        # merged-away and archived records stay in staging, flagged
        6          | [lead@11-02 16:00]                                               | []                | 1           | true
        7          | [lead@11-02 17:00]                                               | []                | NULL        | true
        """,
    )


def test_merged_away_records_name_their_survivor(example):
    example.expect(
        "SELECT merged_id, survivor_id FROM staging.hubspot_merges ORDER BY merged_id",
        """
        merged_id | survivor_id
        # from the survivor's hs_merged_object_ids and from the merged record's merged_into (one row)
        6         | 1
        # a merged record HubSpot no longer returns is still known from its survivor
        9         | 1
        """,
    )


def test_a_contact_id_that_is_not_a_plain_number_fails_the_build(new_example):
    ex = new_example()
    ex.hubspot_lifecycle_stages()
    ex.hubspot(
        "contacts",
        """
        id   | created_at           | createdate
        # HubSpot record ids are numbers sent as strings: anything else is a broken load, not a contact
        12ab | 2026-11-02T15:00:00Z | 2026-11-02T15:00:00.000Z
        """,
    )
    with pytest.raises(BuildError, match=r"HubSpot contact id '12ab' is not a plain number"):
        ex.build()
