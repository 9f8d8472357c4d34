-- model: marts.conversion_anomalies
-- write: replace_all
-- grain: one row per anomaly_id
-- key: anomaly_id
-- inputs: staging.conversion_anomaly_deliveries, staging.conversion_anomaly_scores
-- table: Anomalies of GA4 conversions and funnel steps: the settled days whose rate fell outside its prediction interval (kinds 'drop', 'spike', and 'zero' for a series that stopped: no event at all where at least 10 were expected). Judged on the RATE (per session, or per event of the previous funnel step), so a traffic surge with normal rates is not an anomaly; expected = the weekday's rate over the 8 weeks before (shrunk towards the 8-week rate where weekdays do not really differ), interval = -3.0 / +4.0 prediction SDs including the extra day-to-day variation of the rate (see staging.conversion_anomaly_scores for every judged day and the method). `delivered` says whether the alert went out by e-mail/Slack (once per anomaly; the delivery state survives rebuilds).
-- column anomaly_id VARCHAR NOT NULL: Stable id of the anomaly: date | property | series type | conversion (| step).
-- column date DATE: The day of the anomaly (property-local).
-- column source_id VARCHAR: GA4 property id.
-- column series_type VARCHAR: 'conversion' (judged per session) or 'funnel_step' (judged per event of the previous step).
-- column conversion_name VARCHAR: The catalog conversion (for a funnel step: the step's conversion).
-- column funnel_name VARCHAR: The funnel of a funnel_step anomaly; NULL for conversions.
-- column step_index INTEGER: Step position in the funnel for funnel_step anomalies; NULL for conversions.
-- column denominator_name VARCHAR: What the rate is per: 'sessions' or the previous step's conversion.
-- column observed BIGINT: Events of the conversion that day.
-- column denominator BIGINT: Sessions, or events of the previous step, that day.
-- column observed_rate DOUBLE: observed / denominator (events per session can exceed 1).
-- column expected DOUBLE: Expected events that day (expected_rate x denominator).
-- column expected_rate DOUBLE: Expected rate for the weekday (events per session can exceed 1).
-- column interval_low DOUBLE: Lower end of the prediction interval, in events.
-- column interval_high DOUBLE: Upper end of the prediction interval, in events.
-- column z_score DOUBLE: (observed_rate - expected_rate) / prediction SD; below -3.0 is a drop, above 4.0 a spike.
-- column kind VARCHAR: 'zero' (no event where >= 10 were expected: a series that stopped), 'drop' (below the interval) or 'spike' (above it).
-- column severity VARCHAR: 'high' (zero, or the rate off by half or more), 'medium' (off by a quarter or more, or |z| >= 6), else 'low'.
-- column relative_change DOUBLE: observed_rate / expected_rate - 1 (e.g. -0.5 = half the expected rate).
-- column delivered BOOLEAN: True once the alert was delivered (e-mail and/or Slack); never delivered twice.
-- column delivered_at TIMESTAMP: When it was delivered (UTC); NULL if not yet.
-- accepted series_type: conversion | funnel_step
-- accepted kind: zero | drop | spike
-- accepted severity: high | medium | low
WITH flagged AS (
    SELECT *,
        CASE
            WHEN observed = 0 AND expected >= 10 THEN 'zero'
            WHEN observed < interval_low THEN 'drop'
            WHEN observed > interval_high THEN 'spike'
        END AS kind,
        observed_rate / nullif(expected_rate, 0) - 1 AS relative_change
    FROM staging.conversion_anomaly_scores
)
SELECT
    concat_ws('|', strftime(f.date, '%Y-%m-%d'), f.source_id, f.series_type, f.conversion_name,
        CAST(f.step_index AS VARCHAR)) AS anomaly_id,
    f.date, f.source_id, f.series_type, f.conversion_name, f.funnel_name, f.step_index, f.denominator_name,
    f.observed, f.denominator, f.observed_rate, f.expected, f.expected_rate, f.interval_low, f.interval_high,
    f.z_score, f.kind,
    CASE WHEN f.kind = 'zero' OR abs(f.relative_change) >= 0.5 THEN 'high'
        WHEN abs(f.relative_change) >= 0.25 OR abs(f.z_score) >= 6 THEN 'medium'
        ELSE 'low' END AS severity,
    f.relative_change,
    d.anomaly_id IS NOT NULL AS delivered,
    d.delivered_at
FROM flagged AS f
LEFT JOIN staging.conversion_anomaly_deliveries AS d
    ON d.anomaly_id = concat_ws('|', strftime(f.date, '%Y-%m-%d'), f.source_id, f.series_type, f.conversion_name,
        CAST(f.step_index AS VARCHAR))
WHERE f.kind IS NOT NULL
ORDER BY f.date, f.source_id, f.series_type, f.conversion_name, f.step_index
