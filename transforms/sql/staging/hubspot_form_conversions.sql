-- model: staging.hubspot_form_conversions
-- write: upsert_contacts
-- grain: one row per portal_id x contact_id x form_name x position x converted_at_utc
-- key: portal_id, contact_id, form_name, position, converted_at_utc
-- inputs: staging.hubspot_contacts, staging.hubspot_merges
-- table: Form conversion events per contact, from first_conversion_* and recent_conversion_* (HubSpot keeps only the first and the most recent one per contact): one row per contact and distinct conversion. Merged-away contacts are left out.
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column contact_id VARCHAR NOT NULL: HubSpot contact id.
-- column contact_key UBIGINT: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column form_name VARCHAR NOT NULL: HubSpot conversion event (form) name.
-- column position VARCHAR NOT NULL: 'first' or 'recent': which of HubSpot's two conversion properties this row comes from.
-- column converted_at_utc TIMESTAMP NOT NULL: Instant of the conversion, UTC.
-- column converted_date DATE: Date of the conversion in the GA4 property's reporting time zone.
-- column channel VARCHAR: The contact's channel (original source mapped onto GA4 default channel groups).
-- column country VARCHAR: The contact's country.
-- column is_archived BOOLEAN: True if the contact is archived in HubSpot.
-- accepted position: first | recent
WITH live AS (
    SELECT * FROM staging.hubspot_contacts AS c
    WHERE sw_in_contacts(c.portal_id, c.contact_key) AND c.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
)
SELECT portal_id, contact_id, contact_key, first_conversion_event_name AS form_name, 'first' AS position,
    first_conversion_at_utc AS converted_at_utc, sw_portal_date(portal_id, first_conversion_at_utc) AS converted_date,
    channel, country, is_archived
FROM live WHERE first_conversion_event_name IS NOT NULL
UNION ALL
SELECT portal_id, contact_id, contact_key, recent_conversion_event_name, 'recent', recent_conversion_at_utc,
    sw_portal_date(portal_id, recent_conversion_at_utc), channel, country, is_archived
FROM live
WHERE recent_conversion_event_name IS NOT NULL
  AND (first_conversion_event_name IS NULL
       OR recent_conversion_at_utc IS DISTINCT FROM first_conversion_at_utc
       OR recent_conversion_event_name <> first_conversion_event_name)
