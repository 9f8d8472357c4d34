-- model: marts.macro_conversions_daily
-- write: replace_dates_by_source
-- grain: one row per date x source_system x source_id x conversion_name x tier x kind x channel x device_category x country x visitor_type x conversion_unit x sessions_basis
-- key: date, source_system, source_id, conversion_name, tier, kind, channel, device_category, country, visitor_type, conversion_unit, sessions_basis
-- inputs: marts.conversions_daily, marts.web_sessions_daily
-- table: Macro conversions (the goals) per day, source and segment, with value, sessions and per-session rates. GA4 rows join the sessions of exactly their segment; HubSpot rows (no device or visitor type) join the sessions of their date, channel and country over all devices, visitor types and properties.
-- column date DATE NOT NULL: Date of the conversion (property-local).
-- column source_system VARCHAR NOT NULL: 'ga4' or 'hubspot'.
-- column source_id VARCHAR NOT NULL: GA4 property id or HubSpot portal id.
-- column conversion_name VARCHAR NOT NULL: Catalog conversion.
-- column tier VARCHAR NOT NULL: 'macro'.
-- column kind VARCHAR: 'process_milestone' or 'secondary_action' for micro; NULL for macro.
-- column channel VARCHAR NOT NULL: GA4 default channel group.
-- column device_category VARCHAR: Device category (GA4 rows); NULL for HubSpot rows.
-- column country VARCHAR NOT NULL: Country.
-- column visitor_type VARCHAR: 'new' or 'returning' (GA4 rows); NULL for HubSpot rows.
-- column conversions BIGINT: Number of conversions (see conversion_unit). Additive.
-- column conversion_unit VARCHAR NOT NULL: 'events', 'contacts', 'form_conversions' or 'deals'.
-- column users BIGINT: GA4: distinct users with the event in this row (NOT additive across rows); HubSpot: distinct contacts.
-- column value DOUBLE: Conversion value (NULL when the conversion has no value).
-- column subject_to_thresholding BOOLEAN: GA4 thresholding flag of the source reports.
-- column data_loss_from_other_row BOOLEAN: GA4 '(other)' row flag of the source reports.
-- column sampled BOOLEAN: GA4 sampling flag of the source reports.
-- column sessions BIGINT: Sessions of the row's segment that day (GA4) or of its date, channel and country (HubSpot). Additive.
-- column sessions_basis VARCHAR NOT NULL: 'segment' (GA4 rows) or 'date_channel_country' (HubSpot rows): which sessions the rate divides by.
-- column segment_users BIGINT: GA4 rows: distinct users of the segment that day (web_sessions_daily.total_users; NOT additive); NULL for HubSpot.
-- column conversion_rate DOUBLE: conversions / sessions: conversions per session (can exceed 1 where an event fires several times in a session). Recompute from sums of conversions and sessions, never average it.
-- column user_conversion_rate DOUBLE: GA4 rows: users / segment_users, the share of the segment's users of that day who converted (a proportion within this one row); NULL for HubSpot.
-- column value_per_session DOUBLE: value / sessions.
-- accepted source_system: ga4 | hubspot
-- accepted conversion_unit: events | contacts | form_conversions | deals
-- accepted sessions_basis: segment | date_channel_country
WITH web AS (
    SELECT * FROM marts.web_sessions_daily WHERE sw_in_crm_dates(date)
),
web_channel_country AS (
    SELECT date, channel, country, sum(sessions)::BIGINT AS sessions FROM web GROUP BY ALL
)
SELECT c.*, coalesce(w.sessions, wc.sessions, 0)::BIGINT AS sessions,
    CASE c.source_system WHEN 'ga4' THEN 'segment' ELSE 'date_channel_country' END AS sessions_basis,
    w.total_users AS segment_users,
    c.conversions / nullif(coalesce(w.sessions, wc.sessions), 0) AS conversion_rate,
    CASE WHEN c.source_system = 'ga4' THEN c.users / nullif(w.total_users, 0) END AS user_conversion_rate,
    c.value / nullif(coalesce(w.sessions, wc.sessions), 0) AS value_per_session
FROM marts.conversions_daily AS c
LEFT JOIN web AS w
    ON c.source_system = 'ga4' AND w.date = c.date AND w.property_id = c.source_id AND w.channel = c.channel
   AND w.device_category = c.device_category AND w.country = c.country AND w.visitor_type = c.visitor_type
LEFT JOIN web_channel_country AS wc
    ON c.source_system = 'hubspot' AND wc.date = c.date AND wc.channel = c.channel AND wc.country = c.country
WHERE c.tier = 'macro'
  AND CASE c.source_system WHEN 'ga4' THEN sw_in_dates(c.date) ELSE sw_in_crm_dates(c.date) END
