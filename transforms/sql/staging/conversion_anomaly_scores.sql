-- model: staging.conversion_anomaly_scores
-- write: replace_all
-- grain: one row per date x source_id x series_type x conversion_name x funnel_name x step_index
-- key: date, source_id, series_type, conversion_name, funnel_name, step_index
-- inputs: marts.conversions_daily, marts.web_sessions_daily, staging.conversion_catalog
-- table: Every judged day of every GA4 conversion series and GA4 funnel step against its expected value (marts.conversion_anomalies keeps the anomalies). A conversion is judged on its rate per session (so a traffic surge with a normal rate is not an anomaly); funnel step k >= 2 on its count per count of step k-1 that day (step 1 is judged as its conversion). Baseline: the 56 days before, days far off their weekday's median (> 4 robust SDs) set aside. Expected rate: the weekday's pooled rate shrunk towards the 8-week rate by how much the weekdays really differ (weekday_weight). Interval: expected - 3.0 / + 4.0 prediction SDs (drops are judged more keenly than spikes); the prediction variance adds the day's sampling variance (Poisson for events per session, binomial for step ratios), the extra day-to-day variance of the rate that real traffic has (within-weekday variance of the clean baseline days minus their sampling part) and the variance of the expectation. Judged only on settled days (GA4 still revises the last sw_unsettled_days days), with at least 28 baseline days, at least 3 clean same-weekday days and an expected count of at least 10. Method: transforms/STATISTICS.md.
-- column date DATE NOT NULL: The judged day (property-local).
-- column source_id VARCHAR NOT NULL: GA4 property id.
-- column series_type VARCHAR NOT NULL: 'conversion' (count per session) or 'funnel_step' (count per count of the previous step).
-- column conversion_name VARCHAR NOT NULL: The catalog conversion of the series (for a funnel step: the step's conversion).
-- column funnel_name VARCHAR: The funnel of a funnel_step series; NULL for conversions.
-- column step_index INTEGER: Step position in the funnel (>= 2) for funnel_step series; NULL for conversions.
-- column denominator_name VARCHAR: What the rate is per: 'sessions', or the previous step's conversion name.
-- column observed BIGINT: Count of the conversion (events) on the day.
-- column denominator BIGINT: Sessions (conversion) or events of the previous step (funnel_step) on the day.
-- column observed_rate DOUBLE: observed / denominator (events per session for conversions: can exceed 1).
-- column expected_rate DOUBLE: Expected rate for this weekday (see weekday_weight; can exceed 1 for events per session).
-- column expected DOUBLE: expected_rate x denominator: the expected count on the day.
-- column rate_interval_low DOUBLE: Lower end of the prediction interval of the rate (>= 0; can exceed 1 for events per session).
-- column rate_interval_high DOUBLE: Upper end of the prediction interval of the rate (can exceed 1 for events per session).
-- column interval_low DOUBLE: Lower end of the prediction interval as a count (rate_interval_low x denominator).
-- column interval_high DOUBLE: Upper end of the prediction interval as a count.
-- column z_score DOUBLE: (observed_rate - expected_rate) / prediction SD; below -3.0 is a drop, above 4.0 a spike.
-- column day_to_day_cv DOUBLE: Estimated extra day-to-day variation of the rate, as a coefficient of variation (0 = plain sampling noise).
-- column baseline_days INTEGER: Baseline days with data in the 8 weeks before.
-- column weekday_days INTEGER: Clean same-weekday baseline days (the weekday's own rate pools them).
-- column weekday_weight DOUBLE: Weight of the weekday's own rate in expected_rate (0 = the weekdays do not really differ: all clean baseline days pooled; 1 = the weekday's own rate), from how much the weekday rates spread beyond their noise.
-- accepted series_type: conversion | funnel_step
-- Float aggregates take their input in a fixed order, so a rebuild of the same data gives the same bits.
WITH settled AS (
    SELECT max(date) - CAST(getvariable('sw_unsettled_days') AS INTEGER) AS last_settled FROM marts.web_sessions_daily
),
sessions AS (
    SELECT date, property_id AS source_id, sum(sessions)::DOUBLE AS sessions
    FROM marts.web_sessions_daily GROUP BY ALL
),
ga4_catalog AS (
    SELECT conversion_name, funnel_name, funnel_step FROM staging.conversion_catalog
    WHERE source_system = 'ga4' AND signal_type = 'event'
),
counts AS (
    SELECT date, source_id, conversion_name, sum(conversions)::DOUBLE AS n
    FROM marts.conversions_daily WHERE source_system = 'ga4' GROUP BY ALL
),
daily AS (
    -- Every GA4 conversion per session, on every day with sessions (a day without events counts 0).
    SELECT s.date, s.source_id, 'conversion' AS series_type, k.conversion_name, NULL::VARCHAR AS funnel_name,
        NULL::INTEGER AS step_index, 'sessions' AS denominator_name, coalesce(c.n, 0) AS n, s.sessions AS x,
        false AS bounded, 0 AS step_key
    FROM sessions AS s CROSS JOIN ga4_catalog AS k
    LEFT JOIN counts AS c ON c.date = s.date AND c.source_id = s.source_id AND c.conversion_name = k.conversion_name
    WHERE s.sessions > 0
    UNION ALL
    -- Funnel step k >= 2 per event of step k - 1 that day.
    SELECT s.date, s.source_id, 'funnel_step', k.conversion_name, k.funnel_name, k.funnel_step, prev.conversion_name,
        coalesce(c.n, 0), coalesce(p.n, 0), true, k.funnel_step
    FROM sessions AS s
    CROSS JOIN ga4_catalog AS k
    JOIN ga4_catalog AS prev ON prev.funnel_name = k.funnel_name AND prev.funnel_step = k.funnel_step - 1
    LEFT JOIN counts AS c ON c.date = s.date AND c.source_id = s.source_id AND c.conversion_name = k.conversion_name
    LEFT JOIN counts AS p ON p.date = s.date AND p.source_id = s.source_id AND p.conversion_name = prev.conversion_name
    WHERE k.funnel_step >= 2
),
judged AS (
    SELECT d.* FROM daily AS d, settled WHERE d.date <= settled.last_settled AND d.x > 0
),
pairs AS (
    SELECT j.date, j.source_id, j.series_type, j.conversion_name, j.step_key, b.date AS base_date, b.n, b.x,
        b.n / b.x AS r, dayofweek(b.date) AS wd, dayofweek(b.date) = dayofweek(j.date) AS same_weekday
    FROM judged AS j
    JOIN daily AS b ON b.source_id = j.source_id AND b.series_type = j.series_type
        AND b.conversion_name = j.conversion_name AND b.step_key = j.step_key
        AND b.date BETWEEN j.date - 56 AND j.date - 1
    WHERE b.x > 0
),
weekday_medians AS (
    SELECT date, source_id, series_type, conversion_name, step_key, wd, median(r) AS r_med
    FROM pairs GROUP BY ALL
),
screen AS (
    -- Robust first look: residuals from the weekday medians and their MAD, to set aside days far off
    -- (a past outage must not drag the expectation down, nor inflate the spread, for eight weeks).
    SELECT p.*, p.r - m.r_med AS e0,
        1.4826 * median(abs(p.r - m.r_med)) OVER (PARTITION BY p.date, p.source_id, p.series_type, p.conversion_name, p.step_key) AS s0
    FROM pairs AS p JOIN weekday_medians AS m USING (date, source_id, series_type, conversion_name, step_key, wd)
),
clean AS (
    SELECT * FROM screen WHERE abs(e0) <= 4 * s0 OR s0 = 0
),
weekday_rates AS (
    SELECT date, source_id, series_type, conversion_name, step_key, wd, sum(n) / sum(x) AS p_wd, count(*) AS k_wd
    FROM clean GROUP BY ALL
),
spread AS (
    -- Within-weekday variance of the clean daily rates around their weekday's pooled rate (one degree of
    -- freedom per weekday used up by its mean).
    SELECT c.date, c.source_id, c.series_type, c.conversion_name, c.step_key,
        sqrt(sum((c.r - w.p_wd) ^ 2 ORDER BY c.base_date) / greatest(count(*) - count(DISTINCT c.wd), 1)) AS s_r,
        median(c.x) AS x_typical
    FROM clean AS c JOIN weekday_rates AS w USING (date, source_id, series_type, conversion_name, step_key, wd)
    GROUP BY ALL
),
base_counts AS (
    SELECT date, source_id, series_type, conversion_name, step_key, count(*) AS baseline_days FROM pairs GROUP BY ALL
),
overall AS (
    SELECT date, source_id, series_type, conversion_name, step_key, sum(n) / sum(x) AS p_all, count(*) AS n_clean
    FROM clean GROUP BY ALL
),
weekday_effect AS (
    -- How much the weekday rates really differ: their spread beyond what k days of noise give (empirical Bayes).
    SELECT w.date, w.source_id, w.series_type, w.conversion_name, w.step_key,
        greatest(coalesce(var_samp(w.p_wd ORDER BY w.wd), 0) - avg(s.s_r * s.s_r / w.k_wd ORDER BY w.wd), 0) AS between_var
    FROM weekday_rates AS w JOIN spread AS s USING (date, source_id, series_type, conversion_name, step_key)
    GROUP BY ALL
),
expected AS (
    -- Weekday-aware expectation: the weekday's rate shrunk towards the 8-week rate by how much weekdays
    -- really differ (w = 1: its own weekday; w = 0: no weekday effect, all clean days pooled).
    SELECT w.date, w.source_id, w.series_type, w.conversion_name, w.step_key, w.k_wd AS weekday_days,
        o.n_clean, e.between_var / nullif(e.between_var + s.s_r * s.s_r / w.k_wd, 0) AS weight,
        o.p_all + coalesce(e.between_var / nullif(e.between_var + s.s_r * s.s_r / w.k_wd, 0), 0) * (w.p_wd - o.p_all) AS p
    FROM weekday_rates AS w
    JOIN judged AS j USING (date, source_id, series_type, conversion_name, step_key)
    JOIN overall AS o USING (date, source_id, series_type, conversion_name, step_key)
    JOIN weekday_effect AS e USING (date, source_id, series_type, conversion_name, step_key)
    JOIN spread AS s USING (date, source_id, series_type, conversion_name, step_key)
    WHERE w.wd = dayofweek(j.date)
),
scored AS (
    SELECT j.*, e.p, e.weekday_days, e.n_clean, coalesce(e.weight, 0) AS weight, s.s_r, s.x_typical, b.baseline_days,
        -- sampling variance of a day's rate at exposure x: Poisson (events per session) or binomial (step ratio)
        CASE WHEN j.bounded THEN e.p * greatest(1 - e.p, 0.0) ELSE e.p END AS v1
    FROM judged AS j
    JOIN expected AS e USING (date, source_id, series_type, conversion_name, step_key)
    JOIN spread AS s USING (date, source_id, series_type, conversion_name, step_key)
    JOIN base_counts AS b USING (date, source_id, series_type, conversion_name, step_key)
),
variance AS (
    SELECT *,
        greatest(s_r * s_r - v1 / x_typical, 0.0) AS tau2p2,  -- extra day-to-day variance of the rate
        -- the day's own variance, plus the uncertainty of the expectation (weekday mean and 8-week mean, mixed)
        v1 / x + greatest(s_r * s_r - v1 / x_typical, 0.0)
            + s_r * s_r * (weight / weekday_days + (1 - weight) / n_clean) AS v_pred
    FROM scored
    WHERE baseline_days >= 28 AND weekday_days >= 3 AND p * x >= 10
)
SELECT date, source_id, series_type, conversion_name, funnel_name, step_index, denominator_name,
    n::BIGINT AS observed, x::BIGINT AS denominator, n / x AS observed_rate,
    p AS expected_rate, p * x AS expected,
    -- Drops (a broken tag, a failing checkout) are judged at 3 SDs, spikes at 4.0: see STATISTICS.md.
    greatest(p - 3.0 * sqrt(v_pred), 0.0) AS rate_interval_low, p + 4.0 * sqrt(v_pred) AS rate_interval_high,
    greatest(p - 3.0 * sqrt(v_pred), 0.0) * x AS interval_low, (p + 4.0 * sqrt(v_pred)) * x AS interval_high,
    (n / x - p) / nullif(sqrt(v_pred), 0) AS z_score,
    sqrt(tau2p2) / nullif(p, 0) AS day_to_day_cv,
    baseline_days::INTEGER AS baseline_days, weekday_days::INTEGER AS weekday_days, weight AS weekday_weight
FROM variance
ORDER BY date, source_id, series_type, conversion_name
