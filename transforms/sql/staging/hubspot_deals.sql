-- model: staging.hubspot_deals
-- write: upsert_deals
-- grain: one row per portal_id x deal_id
-- key: portal_id, deal_id
-- inputs: raw.hubspot_deals, staging.hubspot_deal_stages
-- table: HubSpot deals, one row per portal and deal (newest stored version), properties parsed and typed, with closed/won status from the pipeline definition. Merged-away deals (a duplicate merged into the deal that survives, which lists it in hs_merged_object_ids) are left out: the survivor is the same deal and counting both would count it twice.
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column deal_id VARCHAR NOT NULL: HubSpot deal id.
-- column contact_id VARCHAR: First associated contact id (NULL if none).
-- column contact_key UBIGINT: The associated contact id as an integer (see staging.hubspot_contacts.contact_key).
-- column pipeline VARCHAR: Deal pipeline id.
-- column deal_stage VARCHAR: Current deal stage id.
-- column amount DECIMAL(18,2): Deal amount (portal currency).
-- column created_at_utc TIMESTAMP: Deal creation instant, UTC.
-- column closed_at_utc TIMESTAMP: Close instant (closedate), UTC; for open deals the expected close.
-- column close_date DATE: closed_at_utc as a date in the GA4 property's reporting time zone.
-- column is_closed BOOLEAN: True if the deal's stage is closed (won or lost).
-- column is_closed_won BOOLEAN: True if the deal is closed won (stage with win probability 1 in its pipeline, else hs_is_closed_won).
-- column is_archived BOOLEAN: True if the deal is archived in HubSpot.
-- column _loaded_at TIMESTAMP: When the raw row was loaded (UTC); drives incremental builds.
-- raw.hubspot_deals holds one row per (portal_id, id): raw_load's upsert replaces older versions, so no
-- dedup window is needed here (it cost a sort of the whole table); tests check the key stays unique.
WITH merged_away AS (
    -- a survivor read before its duplicate's merged-away row arrives still names it
    SELECT DISTINCT portal_id, trim(unnest(string_split(json_extract_string(properties, '$.hs_merged_object_ids'), ';'))) AS id
    FROM raw.hubspot_deals
    WHERE coalesce(json_extract_string(properties, '$.hs_merged_object_ids'), '') <> ''
),
latest AS (
    SELECT r.portal_id, r.id, r.archived, r.created_at, r.contact_ids, r._loaded_at,
        json_extract_string(r.properties, ['$.pipeline', '$.dealstage', '$.amount', '$.createdate', '$.closedate',
            '$.hs_is_closed_won']) AS p
    FROM raw.hubspot_deals AS r
    WHERE sw_in_deals(r.portal_id, r.id) AND r.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM merged_away AS m WHERE m.portal_id = r.portal_id AND m.id = r.id)
)
SELECT
    d.portal_id,
    d.id AS deal_id,
    json_extract_string(d.contact_ids, '$[0]') AS contact_id,
    sw_contact_key(json_extract_string(d.contact_ids, '$[0]')) AS contact_key,
    coalesce(nullif(d.p[1], ''), 'default') AS pipeline,
    d.p[2] AS deal_stage,
    TRY_CAST(d.p[3] AS DECIMAL(18, 2)) AS amount,
    sw_utc(coalesce(sw_hs_instant(d.p[4]), sw_hs_instant(CAST(d.created_at AS VARCHAR)))) AS created_at_utc,
    sw_utc(sw_hs_instant(d.p[5])) AS closed_at_utc,
    sw_portal_date(d.portal_id, sw_utc(sw_hs_instant(d.p[5]))) AS close_date,
    coalesce(s.is_closed, d.p[6] = 'true') AS is_closed,
    coalesce(s.is_won, d.p[6] = 'true') AS is_closed_won,
    coalesce(d.archived, false) AS is_archived,
    d._loaded_at
FROM latest AS d
LEFT JOIN staging.hubspot_deal_stages AS s
    ON s.portal_id = d.portal_id AND s.pipeline_id = coalesce(nullif(d.p[1], ''), 'default') AND s.stage_id = d.p[2]
