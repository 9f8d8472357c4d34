-- model: marts.channel_funnel_daily
-- write: replace_dates_and_crm_dates
-- grain: one row per date x channel x property_id x portal_id (a portal beside its paired property)
-- key: date, channel, property_id, portal_id
-- inputs: marts.conversions_daily, marts.web_sessions_daily, staging.ga4_events, staging.hubspot_contact_stage_events, staging.hubspot_contacts, staging.hubspot_deals, staging.hubspot_merges
-- table: Web to CRM per day and channel: GA4 sessions, micro conversions and leads next to the HubSpot contacts created from them and their progress (lifecycle stages entered that day, deals won that day). HubSpot records are put on the channel their original source maps to (channel mapping file) and on the date of the event in their portal's time zone (raw.hubspot_portals: normally the paired GA4 property's; the property's reporting zone for a portal without a record), beside the paired property's web figures. Lifecycle columns use HubSpot's standard stage values (lead, marketingqualifiedlead, salesqualifiedlead, opportunity, customer).
-- column date DATE: Date (property-local).
-- column channel VARCHAR: GA4 default channel group.
-- column sessions BIGINT: GA4 sessions (all properties).
-- column engaged_sessions BIGINT: GA4 engaged sessions.
-- column micro_conversions BIGINT: GA4 micro conversion events of the catalog (all micro conversions added up; an event count, not people).
-- column leads BIGINT: GA4 lead events (the generate_lead event; the lead event name is a build setting).
-- column web_macro_conversions BIGINT: GA4 macro conversion events of the catalog (e.g. purchases).
-- column web_revenue DOUBLE: Value of the GA4 macro conversions (e.g. purchase revenue), property currency, rounded to 6 decimals (so that reruns give identical bits).
-- column contacts_created BIGINT: HubSpot contacts created that day in this channel: every contact HubSpot still returns, live or archived; merged-away records are left out (the API keeps no creation date for them; their survivor stands for them). Archived contacts come from the archived pass without their source and count as the unmapped channel.
-- column crm_leads BIGINT: Contacts entering lifecycle stage lead.
-- column mqls BIGINT: Contacts entering marketingqualifiedlead.
-- column sqls BIGINT: Contacts entering salesqualifiedlead.
-- column opportunities BIGINT: Contacts entering opportunity.
-- column customers BIGINT: Contacts entering customer.
-- column deals_won BIGINT: Deals closed won that day (by close date), on their first associated contact's channel.
-- column revenue DOUBLE: Amount of the deals won that day (portal currency).
-- column property_id VARCHAR: GA4 property of the row's web figures; HubSpot figures carry the property their portal is paired with (raw.hubspot_portals; with one property, every portal's).
-- column portal_id VARCHAR: HubSpot portal paired with the property (NULL for a web-only property); its instants are cut into days in its own time zone.
WITH web AS (
    SELECT date, property_id, channel, sum(sessions) AS sessions, sum(engaged_sessions) AS engaged_sessions
    FROM marts.web_sessions_daily WHERE sw_in_crm_dates(date) GROUP BY ALL
),
web_conversions AS (
    SELECT date, source_id AS property_id, channel,
        sum(conversions) FILTER (WHERE tier = 'micro') AS micro_conversions,
        sum(conversions) FILTER (WHERE tier = 'macro') AS web_macro_conversions,
        round(sum(value) FILTER (WHERE tier = 'macro'), 6) AS web_revenue
    FROM marts.conversions_daily WHERE source_system = 'ga4' AND sw_in_crm_dates(date) GROUP BY ALL
),
leads AS (
    SELECT date, property_id, channel, sum(event_count) AS leads
    FROM staging.ga4_events WHERE event_name = getvariable('sw_lead_event') AND sw_in_crm_dates(date) GROUP BY ALL
),
-- HubSpot figures sit next to the paired property's (transforms/zones.py): a portal's days are cut in its own
-- zone and put beside its own property's days, never another zone's.
contacts AS (
    SELECT c.created_date AS date, c.portal_id, c.channel, count(*) AS contacts_created
    FROM staging.hubspot_contacts AS c
    WHERE c.created_date IS NOT NULL AND sw_in_crm_dates(c.created_date) AND c.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
    GROUP BY ALL
),
stages AS (
    SELECT entered_date AS date, portal_id, channel,
        count(*) FILTER (WHERE stage = 'lead') AS crm_leads,
        count(*) FILTER (WHERE stage = 'marketingqualifiedlead') AS mqls,
        count(*) FILTER (WHERE stage = 'salesqualifiedlead') AS sqls,
        count(*) FILTER (WHERE stage = 'opportunity') AS opportunities,
        count(*) FILTER (WHERE stage = 'customer') AS customers
    FROM staging.hubspot_contact_stage_events WHERE sw_in_crm_dates(entered_date) GROUP BY ALL
),
deals AS (
    SELECT d.close_date AS date, d.portal_id, coalesce(c.channel, getvariable('sw_unmapped_channel')) AS channel,
        count(*) AS deals_won, sum(d.amount)::DOUBLE AS revenue
    FROM staging.hubspot_deals AS d
    LEFT JOIN staging.hubspot_contacts AS c ON c.portal_id = d.portal_id AND c.contact_id = d.contact_id
    WHERE d.is_closed_won AND d.close_date IS NOT NULL AND sw_in_crm_dates(d.close_date)
    GROUP BY ALL
),
crm AS (
    SELECT * FROM contacts
    UNION ALL BY NAME SELECT * FROM stages
    UNION ALL BY NAME SELECT * FROM deals
),
parts AS (
    SELECT date, property_id, NULL::VARCHAR AS portal_id, channel, sessions, engaged_sessions,
        NULL AS micro_conversions, NULL AS leads,
        NULL AS web_macro_conversions, NULL AS web_revenue, NULL AS contacts_created, NULL AS crm_leads, NULL AS mqls,
        NULL AS sqls, NULL AS opportunities, NULL AS customers, NULL AS deals_won, NULL AS revenue
    FROM web
    UNION ALL BY NAME SELECT * FROM web_conversions
    UNION ALL BY NAME SELECT * FROM leads
    UNION ALL BY NAME SELECT * REPLACE (sw_portal_property(portal_id) AS property_id) FROM (
        SELECT *, NULL::VARCHAR AS property_id FROM crm
    )
),
paired AS (
    SELECT * REPLACE (coalesce(portal_id, sw_property_portal(property_id)) AS portal_id) FROM parts
)
SELECT date, channel,
    coalesce(sum(sessions), 0)::BIGINT AS sessions,
    coalesce(sum(engaged_sessions), 0)::BIGINT AS engaged_sessions,
    coalesce(sum(micro_conversions), 0)::BIGINT AS micro_conversions,
    coalesce(sum(leads), 0)::BIGINT AS leads,
    coalesce(sum(web_macro_conversions), 0)::BIGINT AS web_macro_conversions,
    round(coalesce(sum(web_revenue), 0), 6)::DOUBLE AS web_revenue,
    coalesce(sum(contacts_created), 0)::BIGINT AS contacts_created,
    coalesce(sum(crm_leads), 0)::BIGINT AS crm_leads,
    coalesce(sum(mqls), 0)::BIGINT AS mqls,
    coalesce(sum(sqls), 0)::BIGINT AS sqls,
    coalesce(sum(opportunities), 0)::BIGINT AS opportunities,
    coalesce(sum(customers), 0)::BIGINT AS customers,
    coalesce(sum(deals_won), 0)::BIGINT AS deals_won,
    coalesce(sum(revenue), 0)::DOUBLE AS revenue,
    property_id,
    portal_id
FROM paired
GROUP BY date, channel, property_id, portal_id
