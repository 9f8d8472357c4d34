-- model: staging.hubspot_contact_facts
-- write: upsert_contacts
-- grain: one row per portal_id x contact_id
-- key: portal_id, contact_id
-- inputs: staging.conversion_catalog, staging.hubspot_contact_stage_events, staging.hubspot_contacts, staging.hubspot_deals, staging.hubspot_form_conversions, staging.hubspot_merges
-- table: One row per live HubSpot contact (merged-away records left out; archived kept) with the catalog conversions the contact has reached so far; the contact-level basis of segment_summary (CRM rows) and micro_macro_lift (basis 'contact').
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column contact_id VARCHAR NOT NULL: HubSpot contact id.
-- column contact_key UBIGINT: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column created_date DATE: Creation date in the GA4 property's reporting time zone.
-- column channel VARCHAR: Original source mapped onto GA4 default channel groups.
-- column hs_analytics_source VARCHAR: HubSpot original source value.
-- column country VARCHAR: Contact country.
-- column first_conversion_event_name VARCHAR: The contact's first form conversion.
-- column is_archived BOOLEAN: True if the contact is archived in HubSpot.
-- column conversions VARCHAR[]: Names of the HubSpot catalog conversions (lifecycle stages, forms, closed-won deals) this contact has reached, sorted.
-- column reached_macro BOOLEAN: True if the contact reached any HubSpot macro conversion of the catalog (e.g. customer, closed-won deal).
WITH live AS (
    SELECT c.*
    FROM staging.hubspot_contacts AS c
    WHERE sw_in_contacts(c.portal_id, c.contact_key) AND c.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
),
reached AS (
    SELECT s.portal_id, s.contact_id, k.conversion_name, k.tier
    FROM staging.hubspot_contact_stage_events AS s
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'lifecycle_stage' AND k.signal = s.stage
    WHERE sw_in_contacts(s.portal_id, s.contact_key)
    UNION ALL
    SELECT f.portal_id, f.contact_id, k.conversion_name, k.tier
    FROM staging.hubspot_form_conversions AS f
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'form' AND k.signal = f.form_name
    WHERE sw_in_contacts(f.portal_id, f.contact_key)
    UNION ALL
    SELECT d.portal_id, d.contact_id, k.conversion_name, k.tier
    FROM staging.hubspot_deals AS d
    JOIN staging.conversion_catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'deal_won' AND (k.signal = '*' OR k.signal = d.pipeline)
    WHERE d.is_closed_won AND d.contact_id IS NOT NULL AND sw_in_contacts(d.portal_id, d.contact_key)
),
per_contact AS (
    SELECT portal_id, contact_id, list_sort(list(DISTINCT conversion_name)) AS conversions,
        bool_or(tier = 'macro') AS reached_macro
    FROM reached
    GROUP BY ALL
)
SELECT l.portal_id, l.contact_id, l.contact_key, l.created_date, l.channel, l.hs_analytics_source, l.country,
    l.first_conversion_event_name, l.is_archived,
    coalesce(p.conversions, []::VARCHAR[]) AS conversions, coalesce(p.reached_macro, false) AS reached_macro
FROM live AS l
LEFT JOIN per_contact AS p ON p.portal_id = l.portal_id AND p.contact_id = l.contact_id
