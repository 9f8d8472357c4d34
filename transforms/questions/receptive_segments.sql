-- question: Which segments are most receptive, by a margin that matters?
-- Segments (channel, device, country, visitor type, landing page, campaign; CRM: channel, original
-- source, country) whose conversion rate is higher than the rest of the traffic, where the difference
-- is statistically significant after the Benjamini-Hochberg correction AND practically significant:
-- `significant` in marts.segment_summary requires both (see its column comment and
-- transforms/STATISTICS.md). Ordered by the lower bound of the lift interval: the segments that are
-- better than the rest by the largest margin we can vouch for come first.
-- When no segment clears that bar (a short window or little traffic), the answer says so: the five
-- strongest tested candidates are listed with verdict 'not significant', to read as "nothing yet".
WITH candidates AS (
    SELECT *, significant AS passes
    FROM marts.segment_summary
    WHERE tested AND lift > 1
),
outcome AS (
    SELECT coalesce(bool_or(passes), false) AS any_passes FROM candidates
),
ranked AS (
    SELECT c.*, o.any_passes,
        row_number() OVER (ORDER BY c.lift_ci_low DESC, c.source_system, c.conversion_name, c.segment_dimension, c.segment_value) AS n
    FROM candidates AS c, outcome AS o
    WHERE c.passes OR NOT o.any_passes
)
SELECT
    CASE WHEN passes THEN 'practically significant' ELSE 'not significant (no segment cleared the bar)' END AS verdict,
    source_system, tier, conversion_name, segment_dimension, segment_value,
    window_start, window_end, unit, units, conversions,
    round(rate, 4) AS rate, round(rest_rate, 4) AS rest_rate,
    round(lift, 2) AS lift, round(lift_ci_low, 2) AS lift_ci_low, round(lift_ci_high, 2) AS lift_ci_high,
    q_value, rank AS rank_in_family
FROM ranked
WHERE n <= CASE WHEN any_passes THEN 25 ELSE 5 END
ORDER BY n;
