-- model: marts.segment_summary
-- write: replace_all_statistics
-- grain: one row per window_start x window_end x source_system x conversion_name x segment_dimension x segment_value
-- key: window_start, window_end, source_system, conversion_name, segment_dimension, segment_value
-- inputs: staging.conversion_catalog, staging.ga4_segment_daily, staging.ga4_web_sessions, staging.hubspot_cohort_daily
-- table: Which segments are most receptive: per window, conversion and segment value, the conversion rate with its 95 % interval, the lift against the REST of the traffic (all other values of the same dimension) with a 95 % interval, a two-sided test, Benjamini-Hochberg q-values across the values of one dimension for one conversion (the family tested together), a practical band, a minimum detectable lift, a minimum-sample gate and a rank by the lower bound of the lift interval. GA4 rows sum days, and a segment's daily rate swings far more than binomial noise, so their variance is clustered by day (sandwich variance over the window's days, t on days - 1 degrees of freedom, never below the binomial one) for p, q and both intervals. GA4 rows by channel, device, country and visitor type count user-days (each day's users of the segment, summed over the window) and users converting that day; GA4 rows by landing page and campaign count sessions and purchases; HubSpot rows count contacts created in the window and those who reached the conversion by now (per contact: pooled z-test or Fisher's exact, Katz interval). HubSpot original_source rows are left out when the sources map one-to-one onto channels (a duplicate family). Every lift is an association between a segment and a conversion rate, not an effect of the segment. Formulas: transforms/STATISTICS.md.
-- column window_start DATE NOT NULL: First date of the window (property-local).
-- column window_end DATE NOT NULL: Last date of the window: the last GA4 date minus the days GA4 still revises (unsettled_days, default 2).
-- column source_system VARCHAR NOT NULL: 'ga4' or 'hubspot'.
-- column tier VARCHAR: 'micro' or 'macro'.
-- column conversion_name VARCHAR NOT NULL: Catalog conversion, or 'all' (HubSpot: any macro conversion).
-- column segment_dimension VARCHAR NOT NULL: ga4: channel, device_category, country, visitor_type, landing_page, campaign; hubspot: channel, original_source, country.
-- column segment_value VARCHAR NOT NULL: The segment.
-- column unit VARCHAR: What units and conversions count: 'user_days' (users of each day summed over days: a user active on two days counts twice), 'sessions', or 'contacts'.
-- column units BIGINT: Units in the segment over the window (never fewer than conversions).
-- column conversions BIGINT: Converting units in the segment (GA4 user_days: users with the event that day; sessions: purchases; contacts: contacts who reached it).
-- column rate DOUBLE: conversions / units.
-- column rate_ci_low DOUBLE: 95 % interval of rate, lower bound: Wilson; for GA4 rows on the effective sample size (units divided by the day-clustered design effect, at least 1).
-- column rate_ci_high DOUBLE: 95 % interval of rate, upper bound (see rate_ci_low).
-- column rest_units BIGINT: Units in all other values of the same dimension.
-- column rest_conversions BIGINT: Conversions in all other values of the same dimension.
-- column rest_rate DOUBLE: rest_conversions / rest_units.
-- column lift DOUBLE: rate / rest_rate (1 = no difference).
-- column lift_ci_low DOUBLE: 95 % interval of the lift, lower bound: GA4 exp(ln lift -/+ t(0.975, days - 1) se) with the day-clustered se; HubSpot the Katz log interval (0.5 added to each count when a count is 0, also for GA4 rows with no conversion on one side).
-- column lift_ci_high DOUBLE: Katz log 95 % interval of the lift, upper bound.
-- column test_method VARCHAR: 't_day_cluster' (GA4: t-test of ln lift with day-clustered variance), 'z' (pooled two-proportion z-test) or 'fisher' (Fisher's exact, when an expected cell count is below 5 or a side has no conversion); NULL when not tested.
-- column p_value DOUBLE: Two-sided p-value of rate = rest_rate; NULL when the row fails the minimum-sample gate.
-- column q_value DOUBLE: Benjamini-Hochberg adjusted p-value within the family (same window, source, conversion and dimension): flagged rows keep the false discovery rate within 5 % per family.
-- column min_detectable_lift DOUBLE: The smallest lift above 1 this row could detect with 80 % power at alpha 0.05 (two-sided), from its own counts and variance; NULL when not tested.
-- column significant BOOLEAN: q_value < 0.05 AND the whole lift interval lies outside the practical band 0.95-1.05 (build setting; a real but tiny difference is not flagged).
-- column tested BOOLEAN: False when the row fails the minimum-sample gate (see gate_reason); it then has no p, q or rank.
-- column gate_reason VARCHAR: Why the row was not tested (too few units in segment or rest, or too few conversions); NULL when tested.
-- column rank INTEGER: 1 = most receptive: order of lift_ci_low (highest first) among the tested rows of the family.
-- accepted source_system: ga4 | hubspot
-- accepted tier: micro | macro
-- accepted unit: user_days | sessions | contacts
-- accepted test_method: t_day_cluster | z | fisher
WITH bounds AS (
    -- GA4 still revises its most recent days: the window ends before them (build setting unsettled_days).
    SELECT min(date) AS window_start, max(date) - CAST(getvariable('sw_unsettled_days') AS INTEGER) AS window_end
    FROM staging.ga4_web_sessions
),
ga4 AS (
    SELECT 'ga4' AS source_system, s.tier, s.conversion_name, s.segment_dimension, s.segment_value, s.unit,
        sum(s.units)::BIGINT AS units, sum(s.conversions)::BIGINT AS conversions
    FROM staging.ga4_segment_daily AS s, bounds AS b
    WHERE s.date BETWEEN b.window_start AND b.window_end
    GROUP BY ALL
),
ga4_day_grid AS (
    -- Every (segment value, day) of a family, zero-filled, so that a day the segment had no one still counts
    -- for the rest: the days are the clusters of the variance (transforms/STATISTICS.md).
    SELECT v.conversion_name, v.segment_dimension, v.segment_value, d.date,
        coalesce(s.units, 0)::BIGINT AS units, coalesce(s.conversions, 0)::BIGINT AS conversions
    FROM (SELECT DISTINCT s.conversion_name, s.segment_dimension, s.segment_value
          FROM staging.ga4_segment_daily AS s, bounds AS b WHERE s.date BETWEEN b.window_start AND b.window_end) AS v
    JOIN (SELECT DISTINCT s.conversion_name, s.segment_dimension, s.date
          FROM staging.ga4_segment_daily AS s, bounds AS b WHERE s.date BETWEEN b.window_start AND b.window_end) AS d
        ON d.conversion_name = v.conversion_name AND d.segment_dimension = v.segment_dimension
    LEFT JOIN (SELECT conversion_name, segment_dimension, segment_value, date, sum(units) AS units,
                      sum(conversions) AS conversions
               FROM staging.ga4_segment_daily GROUP BY ALL) AS s
        ON s.conversion_name = v.conversion_name AND s.segment_dimension = v.segment_dimension
       AND s.segment_value = v.segment_value AND s.date = d.date
),
ga4_day_rest AS (
    SELECT *, (sum(units) OVER day_family - units)::BIGINT AS rest_units,
        (sum(conversions) OVER day_family - conversions)::BIGINT AS rest_conversions
    FROM ga4_day_grid
    WINDOW day_family AS (PARTITION BY conversion_name, segment_dimension, date)
),
ga4_days AS (
    SELECT conversion_name, segment_dimension, segment_value,
        list({'units': units, 'conversions': conversions, 'rest_units': rest_units,
              'rest_conversions': rest_conversions} ORDER BY date) AS day_counts
    FROM ga4_day_rest
    GROUP BY ALL
),
crm_cohorts AS (
    SELECT c.* FROM staging.hubspot_cohort_daily AS c, bounds AS b
    WHERE c.date BETWEEN b.window_start AND b.window_end
),
crm_catalog AS (
    SELECT conversion_name, tier FROM staging.conversion_catalog WHERE source_system = 'hubspot'
    UNION ALL
    SELECT 'all', 'macro' WHERE EXISTS (SELECT 1 FROM staging.conversion_catalog WHERE source_system = 'hubspot' AND tier = 'macro')
),
crm_counts AS (
    -- '(all contacts)' rows give the units and, as 'all', the contacts that reached any macro.
    SELECT channel, hs_analytics_source, country, conversion_name, contacts, contacts_with_macro
    FROM crm_cohorts
    UNION ALL
    SELECT channel, hs_analytics_source, country, 'all', contacts_with_macro, contacts_with_macro
    FROM crm_cohorts WHERE conversion_name = '(all contacts)'
),
crm_grouped AS (
    SELECT conversion_name,
        CASE WHEN grouping(channel) = 0 THEN 'channel' WHEN grouping(hs_analytics_source) = 0 THEN 'original_source'
             ELSE 'country' END AS segment_dimension,
        coalesce(channel, hs_analytics_source, country) AS segment_value, sum(contacts)::BIGINT AS contacts
    FROM crm_counts
    GROUP BY GROUPING SETS ((conversion_name, channel), (conversion_name, hs_analytics_source), (conversion_name, country))
),
crm_units AS (
    SELECT segment_dimension, segment_value, contacts AS units FROM crm_grouped WHERE conversion_name = '(all contacts)'
),
crm_conversions AS (
    SELECT conversion_name, segment_dimension, segment_value, contacts AS conversions
    FROM crm_grouped WHERE conversion_name <> '(all contacts)'
),
source_is_channel AS (
    -- original_source repeats channel when the mapping is one-to-one on the data: the same groups, the same
    -- tests, a duplicate family. Its rows are then left out.
    SELECT coalesce(bool_and(n = 1), true) AS one_to_one FROM (
        SELECT count(DISTINCT channel) AS n FROM crm_cohorts GROUP BY hs_analytics_source
        UNION ALL
        SELECT count(DISTINCT hs_analytics_source) FROM crm_cohorts GROUP BY channel
    )
),
crm AS (
    SELECT 'hubspot' AS source_system, k.tier, k.conversion_name, u.segment_dimension, u.segment_value, 'contacts' AS unit,
        u.units, coalesce(c.conversions, 0)::BIGINT AS conversions
    FROM crm_units AS u
    CROSS JOIN crm_catalog AS k
    LEFT JOIN crm_conversions AS c
        ON c.conversion_name = k.conversion_name AND c.segment_dimension = u.segment_dimension
       AND c.segment_value = u.segment_value
    WHERE u.segment_dimension <> 'original_source' OR NOT (SELECT one_to_one FROM source_is_channel)
),
all_rows AS (
    SELECT g.*, d.day_counts
    FROM ga4 AS g
    LEFT JOIN ga4_days AS d
        ON d.conversion_name = g.conversion_name AND d.segment_dimension = g.segment_dimension
       AND d.segment_value = g.segment_value
    WHERE g.conversions <= g.units
    UNION ALL
    SELECT *, NULL::STRUCT(units BIGINT, conversions BIGINT, rest_units BIGINT, rest_conversions BIGINT)[] FROM crm
)
SELECT b.window_start, b.window_end, r.source_system, r.tier, r.conversion_name, r.segment_dimension, r.segment_value,
    r.unit, r.units, r.conversions,
    (sum(r.units) OVER family - r.units)::BIGINT AS rest_units,
    (sum(r.conversions) OVER family - r.conversions)::BIGINT AS rest_conversions,
    r.day_counts
FROM all_rows AS r, bounds AS b
WINDOW family AS (PARTITION BY r.source_system, r.conversion_name, r.segment_dimension)
ORDER BY r.source_system, r.conversion_name, r.segment_dimension, r.segment_value
