-- model: staging.hubspot_contact_stage_events
-- write: upsert_contacts
-- grain: one row per portal_id x contact_id x stage x entered_at_utc
-- key: portal_id, contact_id, stage, entered_at_utc
-- inputs: staging.hubspot_contacts, staging.hubspot_lifecycle_stages, staging.hubspot_merges
-- table: Lifecycle-stage entry events: one row per contact and stage entered, unpivoted from the discovered hs_v2_date_entered_<stage> properties. Merged-away contacts are left out (their survivor carries the history); archived contacts stay (the entries happened). HubSpot keeps only the LAST entry into each stage (a re-entry rewrites the date) and keeps the dates of later stages when a contact is moved back, so a stage can carry a date after a later stage's (flagged in entered_after_later_stage), and a stage may be skipped (no row; counted in skipped_before of the next stage entered).
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column contact_id VARCHAR NOT NULL: HubSpot contact id.
-- column contact_key UBIGINT: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column stage VARCHAR NOT NULL: Lifecycle stage internal value.
-- column stage_label VARCHAR: Lifecycle stage label.
-- column entered_at_utc TIMESTAMP NOT NULL: Instant the contact last entered the stage, UTC (HubSpot rewrites it on a re-entry).
-- column entered_date DATE: Date of entry in the GA4 property's reporting time zone.
-- column channel VARCHAR: The contact's channel (original source mapped onto GA4 default channel groups).
-- column country VARCHAR: The contact's country.
-- column is_archived BOOLEAN: True if the contact is archived in HubSpot.
-- column stage_order INTEGER: The stage's position in the portal's lifecycle pipeline (NULL when the pipeline does not list it).
-- column is_current_stage BOOLEAN: True if this is the contact's current lifecycle stage.
-- column entered_after_later_stage BOOLEAN: True if this entry came after the contact had entered a later stage of the pipeline: the contact was moved back (or the stage re-entered) and HubSpot kept only this last entry, so durations measured from or to it are not forward progress.
-- column skipped_before INTEGER: Stages of the pipeline between the previous stage this contact entered and this one that it never entered (0 when none was skipped or the order is unknown).
WITH entries AS (
    SELECT c.portal_id, c.contact_id, c.contact_key, c.e.stage AS stage, c.e.entered_at_utc AS entered_at_utc,
        c.channel, c.country, c.is_archived, c.lifecycle_stage,
        s.stage_label, s.display_order
    FROM (
        SELECT portal_id, contact_id, contact_key, channel, country, is_archived, lifecycle_stage,
            unnest(stage_entries) AS e
        FROM staging.hubspot_contacts
        WHERE sw_in_contacts(portal_id, contact_key) AND merged_into IS NULL
    ) AS c
    LEFT JOIN staging.hubspot_lifecycle_stages AS s ON s.portal_id = c.portal_id AND s.stage = c.e.stage
    WHERE NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
),
ordered AS (
    SELECT *,
        -- the earliest entry among the stages after this one in the pipeline
        min(entered_at_utc) FILTER (WHERE display_order IS NOT NULL) OVER (
            PARTITION BY portal_id, contact_id ORDER BY display_order DESC NULLS FIRST
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS later_stage_entered_at,
        lag(display_order) OVER (PARTITION BY portal_id, contact_id ORDER BY display_order NULLS LAST) AS previous_order
    FROM entries
)
SELECT o.portal_id, o.contact_id, o.contact_key, o.stage, coalesce(o.stage_label, o.stage) AS stage_label, o.entered_at_utc,
    sw_portal_date(o.portal_id, o.entered_at_utc) AS entered_date, o.channel, o.country, o.is_archived,
    o.display_order AS stage_order,
    coalesce(o.stage = o.lifecycle_stage, false) AS is_current_stage,
    coalesce(o.display_order IS NOT NULL AND o.entered_at_utc > o.later_stage_entered_at, false) AS entered_after_later_stage,
    coalesce((
        SELECT count(*) FROM staging.hubspot_lifecycle_stages AS p
        WHERE p.portal_id = o.portal_id AND p.display_order > o.previous_order AND p.display_order < o.display_order
    ), 0)::INTEGER AS skipped_before
FROM ordered AS o
