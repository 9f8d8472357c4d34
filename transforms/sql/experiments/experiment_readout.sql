-- model: marts.experiment_readout
-- write: replace_all_statistics
-- grain: one row per experiment x variant x conversion_name
-- key: experiment, variant, conversion_name
-- inputs: raw.ga4_experiments
-- table: A/B readout of each configured experiment (transforms/config/experiments.yaml): one row per experiment x variant x conversion. The unit is the USER exposed over the experiment's window (GA4 totalUsers of the variant's audience over the whole window, deduplicated by GA4, never a sum of days). Lifts, intervals and p-values are ALWAYS-VALID by default (mixture SPRT): they may be read after every daily refresh; the fixed_* columns are valid for one planned look only. Association within a randomised test: a significant lift is the variant's effect only if the sample-ratio check passes. See transforms/STATISTICS.md, "Experiments".
-- column experiment VARCHAR NOT NULL: Experiment name (experiments.yaml).
-- column variant VARCHAR NOT NULL: Variant name (experiments.yaml); identified in GA4 by its audience.
-- column is_control BOOLEAN: True for the control variant the others are compared with (its lift columns are NULL).
-- column audience_name VARCHAR: The GA4 audience (audienceName) the testing tool created for this variant.
-- column conversion_name VARCHAR NOT NULL: Conversion read out (a GA4 event conversion of the conversion catalog).
-- column tier VARCHAR: micro or macro, as listed in the experiment (and in the catalog).
-- column window_start DATE: First day of the experiment's window read from GA4 (property-local date).
-- column window_end DATE: Last day of the window: the end date, or the last complete day before this build.
-- column users BIGINT: Users of the variant's audience active during the window (exposed users, GA4 totalUsers), summed over the configured GA4 properties.
-- column converters BIGINT: Users of the variant's audience who fired the conversion's event during the window (GA4 totalUsers with eventName), at most users.
-- column rate DOUBLE: converters / users: share of exposed users who converted.
-- column rate_ci_lower DOUBLE: Lower bound of the 95 % Wilson interval of rate (fixed-horizon: the precision of today's rate).
-- column rate_ci_upper DOUBLE: Upper bound of the 95 % Wilson interval of rate.
-- column lift DOUBLE: Relative lift of rate against the control's rate (rate / control rate - 1); NULL on the control row.
-- column lift_ci_lower DOUBLE: Lower bound of the ALWAYS-VALID 95 % confidence sequence of lift (mSPRT, mixture sd 0.10); valid at every daily look.
-- column lift_ci_upper DOUBLE: Upper bound of the always-valid 95 % confidence sequence of lift.
-- column p_value DOUBLE: Always-valid p-value of lift = 0 (1 / mixture likelihood ratio, capped at 1); valid at every daily look.
-- column significant BOOLEAN: p_value < 0.05 (always-valid; the interval then excludes 0). NULL on the control row or when the lift is undefined.
-- column fixed_lift_ci_lower DOUBLE: Lower bound of the FIXED-HORIZON 95 % Wald interval of lift (delta method): valid for one planned look only.
-- column fixed_lift_ci_upper DOUBLE: Upper bound of the fixed-horizon 95 % Wald interval of lift.
-- column fixed_p_value DOUBLE: Fixed-horizon two-sided Wald p-value of lift = 0: overstates evidence when read every day.
-- column minimum_detectable_lift DOUBLE: Relative lift the always-valid test would detect with 80 % power at today's sample and control rate.
-- column planned_share DOUBLE: Share of users the variant was planned to receive (experiments.yaml).
-- column observed_share DOUBLE: Share of the experiment's exposed users this variant received.
-- column srm_p_value DOUBLE: Chi-square goodness-of-fit p-value of users per variant against the planned split (same on every row of the experiment).
-- column srm_flag BOOLEAN: True when srm_p_value < 0.001: a sample-ratio mismatch; assignment or tracking is broken and no lift of the experiment can be trusted.
-- column verdict VARCHAR: The experiment's readout in words (same on every row): 'sample-ratio mismatch: do not read', 'both up', 'micro up, macro flat', ..., or 'no detectable difference, minimum detectable lift X %' (on the macro conversion).
-- column subject_to_thresholding BOOLEAN: True when GA4 applied thresholding to a report of this experiment (small counts may be withheld).
-- accepted tier: micro | macro
WITH windows AS (
    SELECT
        experiment,
        min(window_start) AS window_start,
        max(window_end) AS window_end,
        bool_or(subject_to_thresholding) AS subject_to_thresholding
    FROM raw.ga4_experiments
    GROUP BY experiment
),
exposed AS (
    SELECT r.experiment, r.audience_name, sum(r.total_users)::BIGINT AS users
    FROM raw.ga4_experiments AS r
    WHERE r.event_name IS NULL
    GROUP BY ALL
),
converted AS (
    SELECT r.experiment, r.audience_name, r.event_name, sum(r.total_users)::BIGINT AS converters
    FROM raw.ga4_experiments AS r
    WHERE r.event_name IS NOT NULL
    GROUP BY ALL
)
SELECT
    v.experiment,
    v.variant,
    v.is_control,
    v.audience_name,
    c.conversion_name,
    c.tier,
    w.window_start,
    w.window_end,
    coalesce(e.users, 0)::BIGINT AS users,
    least(coalesce(k.converters, 0), coalesce(e.users, 0))::BIGINT AS converters,
    v.planned_share,
    coalesce(w.subject_to_thresholding, false) AS subject_to_thresholding,
    v.variant_order,
    c.conversion_order
FROM sw_experiment_variants AS v
JOIN sw_experiment_conversions AS c USING (experiment)
JOIN windows AS w USING (experiment)
LEFT JOIN exposed AS e ON e.experiment = v.experiment AND e.audience_name = v.audience_name
LEFT JOIN converted AS k
    ON k.experiment = v.experiment AND k.audience_name = v.audience_name AND k.event_name = c.event_name
ORDER BY v.experiment, c.conversion_order, v.variant_order
