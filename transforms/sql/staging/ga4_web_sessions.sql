-- model: staging.ga4_web_sessions
-- write: replace_dates
-- grain: one row per property_id x date x channel x device_category x country x visitor_type
-- key: property_id, date, channel, device_category, country, visitor_type
-- inputs: raw.ga4_web_sessions, staging.channel_groups
-- table: GA4 web_sessions report, typed and deduplicated: one row per property, date and segment (channel, device, country, visitor type). Labels normalised; rows whose labels normalise to the same segment are added up.
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column date DATE NOT NULL: Property-local date (the GA4 property's reporting time zone).
-- column channel VARCHAR NOT NULL: GA4 default channel group (sessionDefaultChannelGroup), normalised onto the known groups; unknown or empty labels become 'Unassigned', GA4's '(other)' row stays '(other)'.
-- column device_category VARCHAR NOT NULL: GA4 deviceCategory in lower case (desktop, mobile, tablet, ...); '(not set)' when empty.
-- column country VARCHAR NOT NULL: GA4 country name; '(not set)' when empty.
-- column visitor_type VARCHAR NOT NULL: GA4 newVsReturning ('new', 'returning'); '(not set)' when empty.
-- column sessions BIGINT: Sessions.
-- column engaged_sessions BIGINT: Engaged sessions.
-- column total_users BIGINT: GA4 totalUsers of this one date and segment (distinct users; NOT additive across days or segments).
-- column new_users BIGINT: GA4 newUsers of this one date and segment (NOT additive across days or segments).
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding to the report this row came from.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded rows of this report into an '(other)' row.
-- column sampled BOOLEAN: True if GA4 sampled the report this row came from.
-- accepted visitor_type: new | returning | (not set)
SELECT
    r.property_id,
    r.date,
    coalesce(g.channel, CASE WHEN trim(r.session_default_channel_group) = '(other)' THEN '(other)' ELSE 'Unassigned' END) AS channel,
    lower(sw_label(r.device_category)) AS device_category,
    sw_label(r.country) AS country,
    sw_label(r.new_vs_returning) AS visitor_type,
    sum(r.sessions)::BIGINT AS sessions,
    sum(r.engaged_sessions)::BIGINT AS engaged_sessions,
    sum(r.total_users)::BIGINT AS total_users,
    sum(r.new_users)::BIGINT AS new_users,
    coalesce(bool_or(r.subject_to_thresholding), false) AS subject_to_thresholding,
    coalesce(bool_or(r.data_loss_from_other_row), false) AS data_loss_from_other_row,
    coalesce(bool_or(r.sampled), false) AS sampled
FROM raw.ga4_web_sessions AS r
LEFT JOIN staging.channel_groups AS g ON g.channel_key = lower(trim(r.session_default_channel_group))
WHERE sw_in_dates(r.date)
GROUP BY ALL
