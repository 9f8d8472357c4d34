-- model: staging.ga4_segment_daily
-- write: replace_dates
-- grain: one row per date x conversion_name x tier x segment_dimension x segment_value x unit
-- key: date, conversion_name, tier, segment_dimension, segment_value, unit
-- inputs: staging.conversion_catalog, staging.ga4_campaigns, staging.ga4_events, staging.ga4_landing_pages, staging.ga4_web_sessions
-- table: Daily GA4 counts per catalog conversion and segment value, pre-aggregated for marts.segment_summary. Rows by channel, device_category, country and visitor_type use unit 'user_days' (the segment's users of each day, summed over days: a user active on two days counts twice) with conversions = users who triggered the event that day in that segment. Rows by landing_page and campaign use unit 'sessions' with conversions = purchases (ecommercePurchases), only for the catalog conversion whose GA4 event is purchase.
-- column date DATE NOT NULL: Property-local date.
-- column conversion_name VARCHAR NOT NULL: Catalog conversion.
-- column tier VARCHAR NOT NULL: micro or macro.
-- column segment_dimension VARCHAR NOT NULL: channel, device_category, country, visitor_type, landing_page or campaign.
-- column segment_value VARCHAR NOT NULL: The segment's value.
-- column unit VARCHAR NOT NULL: 'user_days' or 'sessions' (see the table comment).
-- column units BIGINT: Units of this date and segment value (user counts are of one day only).
-- column conversions BIGINT: Converting units of this date and segment value.
-- accepted unit: user_days | sessions
WITH web AS (
    SELECT * FROM staging.ga4_web_sessions WHERE sw_in_dates(date)
),
unit_rows AS (
    SELECT date,
        CASE WHEN grouping(channel) = 0 THEN 'channel' WHEN grouping(device_category) = 0 THEN 'device_category'
             WHEN grouping(country) = 0 THEN 'country' ELSE 'visitor_type' END AS segment_dimension,
        coalesce(channel, device_category, country, visitor_type) AS segment_value,
        sum(total_users)::BIGINT AS units
    FROM web
    GROUP BY GROUPING SETS ((date, channel), (date, device_category), (date, country), (date, visitor_type))
),
ga4_catalog AS (
    SELECT conversion_name, tier, signal FROM staging.conversion_catalog WHERE source_system = 'ga4' AND signal_type = 'event'
),
conversion_rows AS (
    SELECT e.date, k.conversion_name,
        CASE WHEN grouping(e.channel) = 0 THEN 'channel' WHEN grouping(e.device_category) = 0 THEN 'device_category'
             WHEN grouping(e.country) = 0 THEN 'country' ELSE 'visitor_type' END AS segment_dimension,
        coalesce(e.channel, e.device_category, e.country, e.visitor_type) AS segment_value,
        sum(e.total_users)::BIGINT AS conversions
    FROM staging.ga4_events AS e
    JOIN ga4_catalog AS k ON k.signal = e.event_name
    WHERE sw_in_dates(e.date)
    GROUP BY GROUPING SETS ((e.date, k.conversion_name, e.channel), (e.date, k.conversion_name, e.device_category),
                            (e.date, k.conversion_name, e.country), (e.date, k.conversion_name, e.visitor_type))
),
purchase_catalog AS (
    SELECT conversion_name, tier FROM ga4_catalog WHERE signal = 'purchase'
),
page_rows AS (
    SELECT date, 'landing_page' AS segment_dimension, landing_page AS segment_value,
        sum(sessions)::BIGINT AS units, sum(ecommerce_purchases)::BIGINT AS conversions
    FROM staging.ga4_landing_pages WHERE sw_in_dates(date) GROUP BY ALL
    UNION ALL
    SELECT date, 'campaign', campaign, sum(sessions)::BIGINT, sum(ecommerce_purchases)::BIGINT
    FROM staging.ga4_campaigns WHERE sw_in_dates(date) GROUP BY ALL
)
SELECT u.date, k.conversion_name, k.tier, u.segment_dimension, u.segment_value, 'user_days' AS unit, u.units,
    coalesce(c.conversions, 0)::BIGINT AS conversions
FROM unit_rows AS u
CROSS JOIN ga4_catalog AS k
LEFT JOIN conversion_rows AS c
    ON c.date = u.date AND c.conversion_name = k.conversion_name
   AND c.segment_dimension = u.segment_dimension AND c.segment_value = u.segment_value
UNION ALL
SELECT p.date, k.conversion_name, k.tier, p.segment_dimension, p.segment_value, 'sessions', p.units, p.conversions
FROM page_rows AS p
CROSS JOIN purchase_catalog AS k
