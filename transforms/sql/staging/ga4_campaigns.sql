-- model: staging.ga4_campaigns
-- write: replace_dates
-- grain: one row per property_id x date x campaign x source x medium x channel
-- key: property_id, date, campaign, source, medium, channel
-- inputs: raw.ga4_campaigns, staging.channel_groups
-- table: GA4 campaigns report, typed and deduplicated: one row per property, date, campaign, source, medium and channel.
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column date DATE NOT NULL: Property-local date.
-- column campaign VARCHAR NOT NULL: Session campaign name (sessionCampaignName); GA4 says '(organic)', '(direct)', '(referral)' or '(not set)' for unpaid traffic.
-- column source VARCHAR NOT NULL: Session source (sessionSource).
-- column medium VARCHAR NOT NULL: Session medium (sessionMedium).
-- column channel VARCHAR NOT NULL: GA4 default channel group, normalised.
-- column sessions BIGINT: Sessions.
-- column total_users BIGINT: Users of this date and campaign row (NOT additive across days or segments).
-- column ecommerce_purchases BIGINT: Purchases (ecommercePurchases).
-- column purchase_revenue DOUBLE: Purchase revenue, property currency.
-- column key_events BIGINT: Key events (keyEvents).
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding to the report this row came from.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded rows of this report into an '(other)' row.
-- column sampled BOOLEAN: True if GA4 sampled the report this row came from.
SELECT
    r.property_id,
    r.date,
    sw_label(r.session_campaign_name) AS campaign,
    sw_label(r.session_source) AS source,
    sw_label(r.session_medium) AS medium,
    coalesce(g.channel, CASE WHEN trim(r.session_default_channel_group) = '(other)' THEN '(other)' ELSE 'Unassigned' END) AS channel,
    sum(r.sessions)::BIGINT AS sessions,
    sum(r.total_users)::BIGINT AS total_users,
    sum(r.ecommerce_purchases)::BIGINT AS ecommerce_purchases,
    round(sum(r.purchase_revenue), 6)::DOUBLE AS purchase_revenue,
    sum(r.key_events)::BIGINT AS key_events,
    coalesce(bool_or(r.subject_to_thresholding), false) AS subject_to_thresholding,
    coalesce(bool_or(r.data_loss_from_other_row), false) AS data_loss_from_other_row,
    coalesce(bool_or(r.sampled), false) AS sampled
FROM raw.ga4_campaigns AS r
LEFT JOIN staging.channel_groups AS g ON g.channel_key = lower(trim(r.session_default_channel_group))
WHERE sw_in_dates(r.date)
GROUP BY ALL
