-- model: marts.conversions_daily
-- write: replace_dates_by_source
-- grain: one row per date x source_system x source_id x conversion_name x tier x kind x channel x device_category x country x visitor_type x conversion_unit
-- key: date, source_system, source_id, conversion_name, tier, kind, channel, device_category, country, visitor_type, conversion_unit
-- inputs: staging.conversion_catalog, staging.ga4_events, staging.hubspot_contact_stage_events, staging.hubspot_contacts, staging.hubspot_deals, staging.hubspot_form_conversions
-- table: Counts (and value) of every catalog conversion, both tiers, per day, source and segment. GA4 rows: one per date x property x conversion x channel x device x country x visitor type. HubSpot rows: one per date x portal x conversion x channel x country (device_category and visitor_type are NULL: the CRM does not know them); the date is the event's instant in the portal's time zone (raw.hubspot_portals; the GA4 property's reporting zone for a portal without a record).
-- column date DATE NOT NULL: Date of the conversion (property-local).
-- column source_system VARCHAR NOT NULL: 'ga4' or 'hubspot'.
-- column source_id VARCHAR NOT NULL: GA4 property id or HubSpot portal id.
-- column conversion_name VARCHAR NOT NULL: Catalog conversion (see marts.conversion_catalog).
-- column tier VARCHAR NOT NULL: 'micro' or 'macro'.
-- column kind VARCHAR: 'process_milestone' or 'secondary_action' for micro; NULL for macro.
-- column channel VARCHAR NOT NULL: GA4 default channel group (HubSpot: original source mapped through the channel mapping).
-- column device_category VARCHAR: Device category (GA4 rows); NULL for HubSpot rows.
-- column country VARCHAR NOT NULL: Country (GA4: session country; HubSpot: contact country).
-- column visitor_type VARCHAR: 'new' or 'returning' (GA4 rows); NULL for HubSpot rows.
-- column conversions BIGINT: Number of conversions (GA4: event count; HubSpot: stage entries, form conversions or deals won). Additive.
-- column conversion_unit VARCHAR NOT NULL: What one conversion is: 'events' (GA4), 'contacts' (lifecycle stage entries), 'form_conversions' or 'deals'.
-- column users BIGINT: GA4: distinct users who triggered the event in this row (NOT additive across rows); HubSpot: distinct contacts in this row.
-- column value DOUBLE: Conversion value (GA4 event value, deal amount, or fixed value x conversions per the catalog); NULL when the conversion has no value.
-- column subject_to_thresholding BOOLEAN: GA4 rows: thresholding applied to the source report; false for HubSpot.
-- column data_loss_from_other_row BOOLEAN: GA4 rows: rows folded into '(other)' in the source report; false for HubSpot.
-- column sampled BOOLEAN: GA4 rows: the source report was sampled; false for HubSpot.
-- accepted source_system: ga4 | hubspot
-- accepted tier: micro | macro
-- accepted kind: process_milestone | secondary_action
-- accepted conversion_unit: events | contacts | form_conversions | deals
WITH catalog AS (SELECT * FROM staging.conversion_catalog),
ga4 AS (
    SELECT e.date, 'ga4' AS source_system, e.property_id AS source_id, k.conversion_name, k.tier, k.kind, e.channel,
        e.device_category, e.country, e.visitor_type, e.event_count AS conversions, 'events' AS conversion_unit,
        e.total_users AS users,
        CASE k.value_source WHEN 'event_value' THEN e.event_value WHEN 'fixed' THEN e.event_count * k.value END AS value,
        e.subject_to_thresholding, e.data_loss_from_other_row, e.sampled
    FROM staging.ga4_events AS e
    JOIN catalog AS k ON k.source_system = 'ga4' AND k.signal_type = 'event' AND k.signal = e.event_name
    WHERE sw_in_dates(e.date)
),
stages AS (
    SELECT s.entered_date AS date, 'hubspot' AS source_system, s.portal_id AS source_id, k.conversion_name, k.tier,
        k.kind, s.channel, NULL::VARCHAR AS device_category, s.country, NULL::VARCHAR AS visitor_type,
        -- staging has one row per contact and stage, so the contacts of a row are its entries
        count(*)::BIGINT AS conversions, 'contacts' AS conversion_unit, count(*)::BIGINT AS users,
        CASE WHEN any_value(k.value_source) = 'fixed' THEN count(*) * any_value(k.value) END AS value,
        false AS subject_to_thresholding, false AS data_loss_from_other_row, false AS sampled
    FROM staging.hubspot_contact_stage_events AS s
    JOIN catalog AS k ON k.source_system = 'hubspot' AND k.signal_type = 'lifecycle_stage' AND k.signal = s.stage
    WHERE s.entered_date IS NOT NULL AND sw_in_crm_dates(s.entered_date)
    GROUP BY ALL
),
forms AS (
    SELECT f.converted_date AS date, 'hubspot' AS source_system, f.portal_id AS source_id, k.conversion_name, k.tier,
        k.kind, f.channel, NULL::VARCHAR AS device_category, f.country, NULL::VARCHAR AS visitor_type,
        count(*)::BIGINT AS conversions, 'form_conversions' AS conversion_unit,
        count(DISTINCT f.contact_id)::BIGINT AS users,
        CASE WHEN any_value(k.value_source) = 'fixed' THEN count(*) * any_value(k.value) END AS value,
        false AS subject_to_thresholding, false AS data_loss_from_other_row, false AS sampled
    FROM staging.hubspot_form_conversions AS f
    JOIN catalog AS k ON k.source_system = 'hubspot' AND k.signal_type = 'form' AND k.signal = f.form_name
    WHERE f.converted_date IS NOT NULL AND sw_in_crm_dates(f.converted_date)
    GROUP BY ALL
),
deals AS (
    SELECT d.close_date AS date, 'hubspot' AS source_system, d.portal_id AS source_id, k.conversion_name, k.tier,
        k.kind, coalesce(c.channel, getvariable('sw_unmapped_channel')) AS channel, NULL::VARCHAR AS device_category,
        coalesce(c.country, '(not set)') AS country, NULL::VARCHAR AS visitor_type,
        count(*)::BIGINT AS conversions, 'deals' AS conversion_unit, count(DISTINCT d.contact_id)::BIGINT AS users,
        CASE any_value(k.value_source) WHEN 'deal_amount' THEN sum(d.amount)::DOUBLE WHEN 'fixed' THEN count(*) * any_value(k.value) END AS value,
        false AS subject_to_thresholding, false AS data_loss_from_other_row, false AS sampled
    FROM staging.hubspot_deals AS d
    JOIN catalog AS k
        ON k.source_system = 'hubspot' AND k.signal_type = 'deal_won' AND (k.signal = '*' OR k.signal = d.pipeline)
    LEFT JOIN staging.hubspot_contacts AS c ON c.portal_id = d.portal_id AND c.contact_id = d.contact_id
    WHERE d.is_closed_won AND d.close_date IS NOT NULL AND sw_in_crm_dates(d.close_date)
    GROUP BY ALL
)
SELECT * FROM ga4
UNION ALL BY NAME SELECT * FROM stages
UNION ALL BY NAME SELECT * FROM forms
UNION ALL BY NAME SELECT * FROM deals
