-- model: staging.hubspot_contact_micro_macro
-- write: upsert_contacts
-- grain: one row per portal_id x contact_id
-- key: portal_id, contact_id
-- inputs: staging.conversion_catalog, staging.hubspot_contact_facts, staging.hubspot_contact_stage_events, staging.hubspot_contacts, staging.hubspot_deals, staging.hubspot_form_conversions
-- table: One row per live HubSpot contact (merged-away records left out) with the instant of its first HubSpot macro conversion and the first instant of each catalog micro conversion it reached: the timeline behind micro_macro_lift's 'contact' basis, which counts a micro conversion only when it happened before the macro and within the follow-up window from creation.
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column contact_id VARCHAR NOT NULL: HubSpot contact id.
-- column contact_key UBIGINT: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column created_at_utc TIMESTAMP: Creation instant, UTC.
-- column created_date DATE: Creation date in the GA4 property's reporting time zone.
-- column macro_at_utc TIMESTAMP: First instant the contact reached any HubSpot macro conversion of the catalog (lifecycle stage entry or closed-won deal close); NULL if never.
-- column micro_events STRUCT(conversion_name VARCHAR, at_utc TIMESTAMP)[]: The catalog micro conversions the contact reached, each with its first instant (UTC), sorted by name.
WITH facts AS (
    SELECT f.portal_id, f.contact_id, f.contact_key, c.created_at_utc, f.created_date
    FROM staging.hubspot_contact_facts AS f
    JOIN staging.hubspot_contacts AS c ON c.portal_id = f.portal_id AND c.contact_id = f.contact_id
    WHERE sw_in_contacts(f.portal_id, f.contact_key)
),
reached AS (
    SELECT s.portal_id, s.contact_id, k.conversion_name, k.tier, s.entered_at_utc AS at_utc
    FROM staging.hubspot_contact_stage_events AS s
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'lifecycle_stage' AND k.signal = s.stage
    WHERE sw_in_contacts(s.portal_id, s.contact_key)
    UNION ALL
    SELECT f.portal_id, f.contact_id, k.conversion_name, k.tier, f.converted_at_utc
    FROM staging.hubspot_form_conversions AS f
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'form' AND k.signal = f.form_name
    WHERE sw_in_contacts(f.portal_id, f.contact_key)
    UNION ALL
    SELECT d.portal_id, d.contact_id, k.conversion_name, k.tier, d.closed_at_utc
    FROM staging.hubspot_deals AS d
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'deal_won' AND (k.signal = '*' OR k.signal = d.pipeline)
    WHERE d.is_closed_won AND d.contact_id IS NOT NULL AND sw_in_contacts(d.portal_id, d.contact_key)
),
firsts AS (
    SELECT portal_id, contact_id, conversion_name, tier, min(at_utc) AS at_utc
    FROM reached WHERE at_utc IS NOT NULL
    GROUP BY ALL
),
per_contact AS (
    SELECT portal_id, contact_id,
        min(at_utc) FILTER (WHERE tier = 'macro') AS macro_at_utc,
        list({'conversion_name': conversion_name, 'at_utc': at_utc} ORDER BY conversion_name)
            FILTER (WHERE tier = 'micro') AS micro_events
    FROM firsts
    GROUP BY ALL
)
SELECT f.portal_id, f.contact_id, f.contact_key, f.created_at_utc, f.created_date, p.macro_at_utc,
    coalesce(p.micro_events, []::STRUCT(conversion_name VARCHAR, at_utc TIMESTAMP)[]) AS micro_events
FROM facts AS f
LEFT JOIN per_contact AS p ON p.portal_id = f.portal_id AND p.contact_id = f.contact_id
