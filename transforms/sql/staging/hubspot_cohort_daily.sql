-- model: staging.hubspot_cohort_daily
-- write: replace_dates_and_crm_dates
-- grain: one row per date x channel x hs_analytics_source x country x conversion_name
-- key: date, channel, hs_analytics_source, country, conversion_name
-- inputs: staging.hubspot_contact_facts
-- table: Contacts per creation date and segment, and which catalog conversions they have reached so far: the additive daily pre-aggregate that marts.segment_summary (HubSpot rows) and marts.micro_macro_lift (basis 'contact') sum over their window. A contact's row moves when it reaches a new conversion, so the incremental build rebuilds the creation dates of re-staged contacts whose facts changed.
-- column date DATE NOT NULL: Contact creation date in the GA4 property's reporting time zone.
-- column channel VARCHAR NOT NULL: Original source mapped onto GA4 default channel groups.
-- column hs_analytics_source VARCHAR NOT NULL: HubSpot original source value.
-- column country VARCHAR NOT NULL: Contact country.
-- column conversion_name VARCHAR NOT NULL: A HubSpot catalog conversion, or '(all contacts)' for the row counting every contact.
-- column contacts BIGINT: Contacts created that day in the segment that reached the conversion (every contact on the '(all contacts)' row).
-- column contacts_with_macro BIGINT: Of those, contacts that reached any HubSpot macro conversion.
WITH facts AS (
    SELECT created_date, channel, hs_analytics_source, country, conversions, reached_macro
    FROM staging.hubspot_contact_facts
    WHERE created_date IS NOT NULL AND sw_in_crm_dates(created_date)
),
rows AS (
    SELECT created_date, channel, hs_analytics_source, country, '(all contacts)' AS conversion_name, reached_macro
    FROM facts
    UNION ALL
    SELECT created_date, channel, hs_analytics_source, country, unnest(conversions), reached_macro FROM facts
)
SELECT created_date AS date, channel, hs_analytics_source, country, conversion_name,
    count(*)::BIGINT AS contacts, count(*) FILTER (WHERE reached_macro)::BIGINT AS contacts_with_macro
FROM rows
GROUP BY ALL
