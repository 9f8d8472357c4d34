-- model: staging.ga4_landing_pages
-- write: replace_dates
-- grain: one row per property_id x date x landing_page x channel
-- key: property_id, date, landing_page, channel
-- inputs: raw.ga4_landing_pages, staging.channel_groups
-- table: GA4 landing_pages report, typed and deduplicated: one row per property, date, landing page and channel.
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column date DATE NOT NULL: Property-local date.
-- column landing_page VARCHAR NOT NULL: Landing page path (landingPage); '(not set)' when empty.
-- column channel VARCHAR NOT NULL: GA4 default channel group, normalised.
-- column sessions BIGINT: Sessions that started on this landing page.
-- column engaged_sessions BIGINT: Engaged sessions.
-- column total_users BIGINT: Users of this date, page and channel (NOT additive across days or segments).
-- column ecommerce_purchases BIGINT: Purchases (ecommercePurchases) in those sessions.
-- column key_events BIGINT: Key events (keyEvents) in those sessions.
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding to the report this row came from.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded rows of this report into an '(other)' row.
-- column sampled BOOLEAN: True if GA4 sampled the report this row came from.
SELECT
    r.property_id,
    r.date,
    sw_label(r.landing_page) AS landing_page,
    coalesce(g.channel, CASE WHEN trim(r.session_default_channel_group) = '(other)' THEN '(other)' ELSE 'Unassigned' END) AS channel,
    sum(r.sessions)::BIGINT AS sessions,
    sum(r.engaged_sessions)::BIGINT AS engaged_sessions,
    sum(r.total_users)::BIGINT AS total_users,
    sum(r.ecommerce_purchases)::BIGINT AS ecommerce_purchases,
    sum(r.key_events)::BIGINT AS key_events,
    coalesce(bool_or(r.subject_to_thresholding), false) AS subject_to_thresholding,
    coalesce(bool_or(r.data_loss_from_other_row), false) AS data_loss_from_other_row,
    coalesce(bool_or(r.sampled), false) AS sampled
FROM raw.ga4_landing_pages AS r
LEFT JOIN staging.channel_groups AS g ON g.channel_key = lower(trim(r.session_default_channel_group))
WHERE sw_in_dates(r.date)
GROUP BY ALL
