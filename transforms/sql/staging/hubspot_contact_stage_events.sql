-- model: staging.hubspot_contact_stage_events
-- partition: contact
-- table: Lifecycle-stage entry events: one row per contact and stage entered, unpivoted from the discovered hs_v2_date_entered_<stage> properties. Merged-away contacts are left out (their survivor carries the history); archived contacts stay (the entries happened).
-- column portal_id: HubSpot portal id.
-- column contact_id: HubSpot contact id.
-- column contact_key: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column stage: Lifecycle stage internal value.
-- column stage_label: Lifecycle stage label.
-- column entered_at_utc: Instant the contact entered the stage, UTC.
-- column entered_date: Date of entry in the GA4 property's reporting time zone.
-- column channel: The contact's channel (original source mapped onto GA4 default channel groups).
-- column country: The contact's country.
-- column is_archived: True if the contact is archived in HubSpot.
SELECT c.portal_id, c.contact_id, c.contact_key, e.stage, coalesce(s.stage_label, e.stage) AS stage_label, e.entered_at_utc,
    sw_local_date(e.entered_at_utc) AS entered_date, c.channel, c.country, c.is_archived
FROM (
    SELECT portal_id, contact_id, contact_key, channel, country, is_archived, unnest(stage_entries) AS e
    FROM staging.hubspot_contacts
    WHERE sw_in_contacts(portal_id, contact_key) AND merged_into IS NULL
) AS c
LEFT JOIN staging.hubspot_lifecycle_stages AS s ON s.portal_id = c.portal_id AND s.stage = c.e.stage
WHERE NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
