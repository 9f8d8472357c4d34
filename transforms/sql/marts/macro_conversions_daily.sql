-- model: marts.macro_conversions_daily
-- partition: date_source
-- table: Macro conversions (the goals) per day, source and segment, with value, sessions and per-session rates. GA4 rows join the sessions of exactly their segment; HubSpot rows (no device or visitor type) join the sessions of their date, channel and country over all devices, visitor types and properties.
-- column date: Date of the conversion (property-local).
-- column source_system: 'ga4' or 'hubspot'.
-- column source_id: GA4 property id or HubSpot portal id.
-- column conversion_name: Catalog conversion.
-- column tier: 'macro'.
-- column kind: 'process_milestone' or 'secondary_action' for micro; NULL for macro.
-- column channel: GA4 default channel group.
-- column device_category: Device category (GA4 rows); NULL for HubSpot rows.
-- column country: Country.
-- column visitor_type: 'new' or 'returning' (GA4 rows); NULL for HubSpot rows.
-- column conversions: Number of conversions (see conversion_unit). Additive.
-- column conversion_unit: 'events', 'contacts', 'form_conversions' or 'deals'.
-- column users: GA4: distinct users with the event in this row (NOT additive across rows); HubSpot: distinct contacts.
-- column value: Conversion value (NULL when the conversion has no value).
-- column subject_to_thresholding: GA4 thresholding flag of the source reports.
-- column data_loss_from_other_row: GA4 '(other)' row flag of the source reports.
-- column sampled: GA4 sampling flag of the source reports.
-- column sessions: Sessions of the row's segment that day (GA4) or of its date, channel and country (HubSpot). Additive.
-- column sessions_basis: 'segment' (GA4 rows) or 'date_channel_country' (HubSpot rows): which sessions the rate divides by.
-- column segment_users: GA4 rows: distinct users of the segment that day (web_sessions_daily.total_users; NOT additive); NULL for HubSpot.
-- column conversion_rate: conversions / sessions: conversions per session (can exceed 1 where an event fires several times in a session). Recompute from sums of conversions and sessions, never average it.
-- column user_conversion_rate: GA4 rows: users / segment_users, the share of the segment's users of that day who converted (a proportion within this one row); NULL for HubSpot.
-- column value_per_session: value / sessions.
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
