-- model: marts.time_to_convert_curve
-- write: replace_all
-- grain: one row per channel x from_step x to_step x day
-- key: channel, from_step, to_step, day
-- inputs: staging.time_to_convert_km
-- table: The Kaplan-Meier curves behind marts.time_to_convert, one point per whole day since the from-step: per channel (and 'All channels'), from-step, to-step and day, the estimated share converted by that day with its pointwise 95 % interval. Days run from 0 to the group's longest follow-up (at most 365). Same subjects, step definitions and censoring as marts.time_to_convert.
-- column channel VARCHAR NOT NULL: Channel of the contacts, or 'All channels'.
-- column from_step VARCHAR NOT NULL: Where the clock starts ('contact_created' or a CRM funnel step).
-- column to_step VARCHAR NOT NULL: The conversion the clock waits for.
-- column day INTEGER NOT NULL: Whole days since the from-step (0, 1, 2, ...).
-- column elapsed INTERVAL: The same as an interval ('3 days'), for date arithmetic; with channel, from_step and to_step it identifies the row.
-- column share_converted DOUBLE: Kaplan-Meier share converted within `day` days (1 - survival), a proportion.
-- column share_converted_ci_low DOUBLE: Lower end of the pointwise 95 % interval of share_converted (complementary log-log transform with Greenwood's variance).
-- column share_converted_ci_high DOUBLE: Upper end of the pointwise 95 % interval of share_converted.
-- column events_to_date BIGINT: Contacts converted within `day` days (observed, not estimated).
WITH bounds AS (
    SELECT channel, from_step, to_step, least(floor(max(t_days)), 365)::INTEGER AS last_day
    FROM staging.time_to_convert_km GROUP BY ALL
),
running AS (
    SELECT channel, from_step, to_step, t_days, survival, greenwood_sum,
        sum(events) OVER (PARTITION BY channel, from_step, to_step ORDER BY t_days
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS events_to_date
    FROM staging.time_to_convert_km
),
grid AS (
    SELECT channel, from_step, to_step, unnest(range(0, last_day + 1)) AS day FROM bounds
),
points AS (
    SELECT g.channel, g.from_step, g.to_step, g.day,
        coalesce(r.survival, 1.0) AS s, r.greenwood_sum AS gw, coalesce(r.events_to_date, 0) AS events_to_date
    FROM grid AS g
    ASOF LEFT JOIN running AS r
        ON r.channel = g.channel AND r.from_step = g.from_step AND r.to_step = g.to_step AND r.t_days <= g.day
)
SELECT channel, from_step, to_step, day::INTEGER AS day, to_days(day::INTEGER) AS elapsed, 1 - s AS share_converted,
    CASE WHEN s >= 1 THEN 0.0 WHEN s <= 0 THEN 1.0 WHEN gw IS NULL THEN NULL
        ELSE 1 - exp(-exp(ln(-ln(s)) + 1.959963984540054 * sqrt(gw) / ln(s))) END AS share_converted_ci_low,
    CASE WHEN s >= 1 THEN 0.0 WHEN s <= 0 THEN 1.0 WHEN gw IS NULL THEN NULL
        ELSE 1 - exp(-exp(ln(-ln(s)) - 1.959963984540054 * sqrt(gw) / ln(s))) END AS share_converted_ci_high,
    events_to_date::BIGINT AS events_to_date
FROM points
ORDER BY channel, from_step, to_step, day
