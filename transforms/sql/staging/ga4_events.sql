-- model: staging.ga4_events
-- write: replace_dates
-- grain: one row per property_id x date x event_name x channel x device_category x country x visitor_type
-- key: property_id, date, event_name, channel, device_category, country, visitor_type
-- inputs: raw.ga4_events, staging.channel_groups
-- table: GA4 events report, typed and deduplicated: one row per property, date, event name and segment.
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column date DATE NOT NULL: Property-local date.
-- column event_name VARCHAR NOT NULL: GA4 event name (eventName).
-- column channel VARCHAR NOT NULL: GA4 default channel group, normalised (see staging.ga4_web_sessions.channel).
-- column device_category VARCHAR NOT NULL: GA4 deviceCategory, lower case; '(not set)' when empty.
-- column country VARCHAR NOT NULL: GA4 country name; '(not set)' when empty.
-- column visitor_type VARCHAR NOT NULL: GA4 newVsReturning; '(not set)' when empty.
-- column event_count BIGINT: Number of events (eventCount).
-- column total_users BIGINT: Users who triggered the event on this date in this segment (GA4 totalUsers; NOT additive across days, segments or events).
-- column event_value DOUBLE: Sum of the event's value parameter (eventValue; purchase revenue for purchase), property currency.
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding to the report this row came from.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded rows of this report into an '(other)' row.
-- column sampled BOOLEAN: True if GA4 sampled the report this row came from.
SELECT
    r.property_id,
    r.date,
    r.event_name,
    coalesce(g.channel, CASE WHEN trim(r.session_default_channel_group) = '(other)' THEN '(other)' ELSE 'Unassigned' END) AS channel,
    lower(sw_label(r.device_category)) AS device_category,
    sw_label(r.country) AS country,
    sw_label(r.new_vs_returning) AS visitor_type,
    sum(r.event_count)::BIGINT AS event_count,
    sum(r.total_users)::BIGINT AS total_users,
    round(sum(r.event_value), 6)::DOUBLE AS event_value,
    coalesce(bool_or(r.subject_to_thresholding), false) AS subject_to_thresholding,
    coalesce(bool_or(r.data_loss_from_other_row), false) AS data_loss_from_other_row,
    coalesce(bool_or(r.sampled), false) AS sampled
FROM raw.ga4_events AS r
LEFT JOIN staging.channel_groups AS g ON g.channel_key = lower(trim(r.session_default_channel_group))
WHERE sw_in_dates(r.date) AND r.event_name IS NOT NULL
GROUP BY ALL
