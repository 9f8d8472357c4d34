-- question: Which segments are most receptive, by a margin that matters?
-- Segments (channel, device, country, visitor type, landing page, campaign; CRM: channel, original
-- source, country) whose conversion rate is higher than the rest of the traffic, where the difference
-- is statistically significant after the Benjamini-Hochberg correction AND practically significant:
-- `significant` in marts.segment_summary already requires both (see its column comment and
-- transforms/STATISTICS.md). Ordered by the lower bound of the lift interval: the segments that are
-- better than the rest by the largest margin we can vouch for come first.
SELECT source_system, tier, conversion_name, segment_dimension, segment_value,
    window_start, window_end, unit, units, conversions,
    round(rate, 4) AS rate, round(rest_rate, 4) AS rest_rate,
    round(lift, 2) AS lift, round(lift_ci_low, 2) AS lift_ci_low, round(lift_ci_high, 2) AS lift_ci_high,
    q_value, rank AS rank_in_family
FROM marts.segment_summary
WHERE significant AND lift > 1
ORDER BY lift_ci_low DESC, source_system, conversion_name, segment_dimension, segment_value
LIMIT 25;
