-- model: marts.time_to_convert
-- write: replace_all
-- grain: one row per channel x from_step x to_step
-- key: channel, from_step, to_step
-- inputs: staging.time_to_convert_km
-- table: How long contacts take to convert in the CRM, per channel (and 'All channels') and pair of steps: from contact creation or a CRM funnel step (lifecycle stage) to a later step or a closed-won deal. Kaplan-Meier estimates: contacts that have not converted yet are CENSORED at censor_at_utc (the data's as-of instant), not dropped, so the medians and shares are not biased towards the fast converters. A step is reached at the FIRST entry into it or into any later step of its funnel (re-entries ignored, skipped steps count as reached, as in marts.funnel_daily); a closed-won deal at the earliest close of a won deal; a contact that reached the to-step at or before the from-step converts at 0 days. Merged-away contacts are left out, archived ones kept. Quantiles follow SAS/statsmodels: the first event time where the survival estimate falls strictly below 1 - q. The curve behind each row is in marts.time_to_convert_curve.
-- column channel VARCHAR NOT NULL: Channel of the contacts (HubSpot original source mapped onto GA4 default channel groups), or 'All channels'.
-- column from_step VARCHAR NOT NULL: Where the clock starts: 'contact_created' or a CRM funnel step of the catalog (e.g. lifecycle_lead).
-- column to_step VARCHAR NOT NULL: The conversion the clock waits for: a later CRM funnel step (e.g. lifecycle_customer) or a deal-won macro conversion (e.g. deal_closed_won).
-- column contacts_at_risk BIGINT: Contacts that reached the from-step by censor_at_utc (the subjects).
-- column events BIGINT: Contacts among them that reached the to-step by censor_at_utc.
-- column censored BIGINT: contacts_at_risk - events: not converted yet, followed up to censor_at_utc.
-- column median_days DOUBLE: Kaplan-Meier median time to convert in days; NULL when fewer than half are estimated to convert within the follow-up (the curve never falls below 0.5).
-- column median_ci_low_days DOUBLE: Lower end of the 95 % confidence interval of the median (inverted Z-tests on the complementary log-log scale with Greenwood's variance, as SAS PROC LIFETEST and statsmodels do); NULL when no event time is compatible with a median.
-- column median_ci_high_days DOUBLE: Upper end of the 95 % interval of the median; NULL when it is not bounded within the follow-up.
-- column p25_days DOUBLE: Days by which 25 % are estimated to have converted (survival strictly below 0.75); NULL if not reached.
-- column p75_days DOUBLE: Days by which 75 % are estimated to have converted (survival strictly below 0.25); NULL if not reached.
-- column converted_by_7d DOUBLE: Kaplan-Meier share converted within 7 days (1 - survival at day 7), a proportion; NULL when no contact was followed for 7 days.
-- column converted_by_30d DOUBLE: Kaplan-Meier share converted within 30 days; NULL when no contact was followed for 30 days.
-- column converted_by_90d DOUBLE: Kaplan-Meier share converted within 90 days; NULL when no contact was followed for 90 days.
-- column max_follow_up_days DOUBLE: Longest observed time (event or censoring) in the group, in days.
-- column censor_at_utc TIMESTAMP: Instant at which unconverted contacts are censored: the latest last-modified instant among the contacts (the HubSpot data's as-of time).
WITH km AS (
    SELECT *,
        -- Z statistic of H0 'median = t' on the cloglog scale: (g(S) - g(0.5)) / (g'(S) * se(S)), se(S) = S * sqrt(greenwood)
        CASE WHEN events > 0 AND survival > 0 AND survival < 1 AND greenwood_sum > 0
            THEN -(ln(-ln(survival)) - ln(ln(2))) * ln(survival) / sqrt(greenwood_sum) END AS z_median,
        lead(t_days) OVER (PARTITION BY channel, from_step, to_step ORDER BY t_days) AS next_t_days
    FROM staging.time_to_convert_km
),
event_rows AS (
    SELECT *, lead(t_days) OVER (PARTITION BY channel, from_step, to_step ORDER BY t_days) AS next_event_t_days
    FROM km WHERE events > 0
),
ci AS (
    SELECT channel, from_step, to_step,
        min(t_days) FILTER (abs(z_median) <= 1.959963984540054) AS median_ci_low_days,
        arg_max(next_event_t_days, t_days) FILTER (abs(z_median) <= 1.959963984540054) AS median_ci_high_days
    FROM event_rows GROUP BY ALL
)
SELECT k.channel, k.from_step, k.to_step,
    max(k.at_risk)::BIGINT AS contacts_at_risk,
    sum(k.events)::BIGINT AS events,
    (max(k.at_risk) - sum(k.events))::BIGINT AS censored,
    min(k.t_days) FILTER (k.events > 0 AND k.survival < 0.5 - 1e-12) AS median_days,
    any_value(ci.median_ci_low_days) AS median_ci_low_days,
    any_value(ci.median_ci_high_days) AS median_ci_high_days,
    min(k.t_days) FILTER (k.events > 0 AND k.survival < 0.75 - 1e-12) AS p25_days,
    min(k.t_days) FILTER (k.events > 0 AND k.survival < 0.25 - 1e-12) AS p75_days,
    CASE WHEN max(k.t_days) >= 7 THEN 1 - coalesce(min(k.survival) FILTER (k.t_days <= 7), 1.0) END AS converted_by_7d,
    CASE WHEN max(k.t_days) >= 30 THEN 1 - coalesce(min(k.survival) FILTER (k.t_days <= 30), 1.0) END AS converted_by_30d,
    CASE WHEN max(k.t_days) >= 90 THEN 1 - coalesce(min(k.survival) FILTER (k.t_days <= 90), 1.0) END AS converted_by_90d,
    max(k.t_days) AS max_follow_up_days,
    any_value(k.censor_at_utc) AS censor_at_utc
FROM km AS k
LEFT JOIN ci USING (channel, from_step, to_step)
GROUP BY k.channel, k.from_step, k.to_step
ORDER BY k.channel, k.from_step, k.to_step
