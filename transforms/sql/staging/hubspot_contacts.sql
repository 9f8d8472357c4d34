-- model: staging.hubspot_contacts
-- write: upsert_contacts
-- grain: one row per portal_id x contact_id
-- key: portal_id, contact_id
-- inputs: raw.hubspot_contacts, staging.channel_mapping, staging.hubspot_lifecycle_stages
-- table: HubSpot contacts, one row per portal and contact (the newest stored version), properties parsed from JSON and typed. HubSpot timestamps are UTC instants (columns *_at_utc); *_date columns are the same instants as calendar dates in the GA4 property's reporting time zone. Includes archived contacts and merged-away records still stored; the marts exclude merged-away ones.
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column contact_id VARCHAR NOT NULL: HubSpot record id.
-- column contact_key UBIGINT: The contact id as an integer (HubSpot ids are numbers): the key incremental builds join on.
-- column created_at_utc TIMESTAMP: Creation instant (createdate), UTC.
-- column created_date DATE: Creation date in the reporting time zone.
-- column updated_at_utc TIMESTAMP: Last modification instant (lastmodifieddate), UTC.
-- column lifecycle_stage VARCHAR: Current lifecycle stage (internal value).
-- column hs_analytics_source VARCHAR: HubSpot original source (hs_analytics_source), e.g. EMAIL_MARKETING; '(not set)' when empty.
-- column channel VARCHAR: GA4 default channel group the original source maps to (channel mapping file); its unmapped_channel when the source is not mapped.
-- column source_detail_1 VARCHAR: hs_analytics_source_data_1 (source detail, e.g. the referring site).
-- column source_detail_2 VARCHAR: hs_analytics_source_data_2 (source detail, e.g. the campaign).
-- column country VARCHAR: Contact country; '(not set)' when empty.
-- column first_conversion_event_name VARCHAR: Name of the contact's first form conversion (first_conversion_event_name).
-- column first_conversion_at_utc TIMESTAMP: Instant of the first conversion, UTC.
-- column recent_conversion_event_name VARCHAR: Name of the contact's most recent form conversion.
-- column recent_conversion_at_utc TIMESTAMP: Instant of the most recent conversion, UTC.
-- column num_conversion_events INTEGER: Number of form conversions HubSpot counted.
-- column stage_entries STRUCT(stage VARCHAR, entered_at_utc TIMESTAMP)[]: Lifecycle-stage entries from the discovered hs_v2_date_entered_* properties: list of (stage, entered_at_utc), only stages entered.
-- column merged_object_ids VARCHAR[]: Ids of contacts merged INTO this one (hs_merged_object_ids), as a list.
-- column merged_into VARCHAR: For a merged-away record: the surviving contact id; else NULL.
-- column is_archived BOOLEAN: True if the contact is archived (deleted) in HubSpot.
-- column _content_hash UBIGINT: Hash of what staging reads from the raw record except the last-modified instant (the properties used here, archived, merged_into, createdate): an incremental build re-stages a re-delivered contact only when it differs, and otherwise just updates updated_at_utc (a search pass omits null properties that a list pass includes; same content, same hash).
-- raw.hubspot_contacts holds one row per (portal_id, id): raw_load's upsert replaces older versions, so no
-- dedup window is needed here (it cost a sort of the whole table); tests check the key stays unique.
WITH latest AS (
    SELECT r.portal_id, r.id, r.archived, r.merged_into, r.updated_at, r.created_at, sw_contact_properties(r.properties) AS p
    FROM raw.hubspot_contacts AS r
    WHERE sw_in_raw_contacts(r.rowid)
),
parsed AS (
    SELECT *,
        sw_utc(coalesce(sw_hs_instant(p[1]), sw_hs_instant(CAST(created_at AS VARCHAR)))) AS created_at_utc,
        sw_contact_updated_at(p[2], updated_at) AS updated_at_utc,
        sw_label(p[4]) AS hs_analytics_source
    FROM latest
)
SELECT
    x.portal_id,
    x.id AS contact_id,
    sw_contact_key(x.id) AS contact_key,
    x.created_at_utc,
    sw_portal_date(x.portal_id, x.created_at_utc) AS created_date,
    x.updated_at_utc,
    nullif(trim(x.p[3]), '') AS lifecycle_stage,
    x.hs_analytics_source,
    coalesce(m.channel, getvariable('sw_unmapped_channel')) AS channel,
    nullif(x.p[5], '') AS source_detail_1,
    nullif(x.p[6], '') AS source_detail_2,
    sw_label(x.p[7]) AS country,
    nullif(trim(x.p[8]), '') AS first_conversion_event_name,
    sw_utc(sw_hs_instant(x.p[9])) AS first_conversion_at_utc,
    nullif(trim(x.p[10]), '') AS recent_conversion_event_name,
    sw_utc(sw_hs_instant(x.p[11])) AS recent_conversion_at_utc,
    TRY_CAST(x.p[12] AS INTEGER) AS num_conversion_events,
    [{'stage': e[1], 'entered_at_utc': sw_utc(sw_hs_instant(e[2]))}
        for e in list_zip(getvariable('sw_stage_names'), x.p[14:]) if nullif(e[2], '') IS NOT NULL] AS stage_entries,
    [trim(i) for i in string_split(coalesce(x.p[13], ''), ';') if trim(i) <> ''] AS merged_object_ids,
    nullif(trim(CAST(x.merged_into AS VARCHAR)), '') AS merged_into,
    coalesce(x.archived, false) AS is_archived,
    sw_contact_content_hash(x.p, x.archived, x.merged_into, x.created_at) AS _content_hash
FROM parsed AS x
LEFT JOIN staging.channel_mapping AS m ON m.hs_analytics_source = x.hs_analytics_source
