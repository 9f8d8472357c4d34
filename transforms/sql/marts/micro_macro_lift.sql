-- model: marts.micro_macro_lift
-- partition: stats
-- table: Which micro conversions lead to macro conversions: for each micro conversion, the macro rate of those who did it against those who did not, with a Katz 95 % interval of the ratio, a two-sided test (pooled z, or Fisher's exact for small expected counts), Benjamini-Hochberg q-values within each basis, and a rank by the lower bound of the lift interval. Basis 'contact' (HubSpot): people, namely contacts created in the window who did the micro conversion vs those who did not, reaching any HubSpot macro conversion (customer, closed-won deal) by now. Basis 'segment_day' (GA4, where only aggregates exist): NOT people but cells of one date x property x channel x device x country x visitor type; users of cells where the micro conversion occurred vs users of cells where it did not, and the share of them with the macro conversion that day: an ecological comparison that shows association at cell level, weaker evidence than the contact basis. Process milestones of a funnel that ends in the macro (e.g. add_to_cart before purchase, opportunity before customer) are prerequisites, not levers: they are reported but neither tested for q-values nor ranked.
-- column window_start: First date of the window (property-local).
-- column window_end: Last date of the window: the last GA4 date minus the days GA4 still revises (unsettled_days, default 2).
-- column basis: 'contact' (HubSpot contacts) or 'segment_day' (GA4 date x segment cells; see the table comment).
-- column micro_conversion: Catalog micro conversion.
-- column kind: 'process_milestone' or 'secondary_action'.
-- column macro_conversion: Catalog macro conversion (GA4), or 'all' = any HubSpot macro conversion of the catalog (contact basis).
-- column unit: 'contacts' or 'user_days' (users summed over cells; a user active on two days counts twice).
-- column is_prerequisite: True for a process milestone of a funnel that ends in the macro: reported, not tested, not ranked.
-- column did_count: Units that did the micro conversion (contacts; or user-days in cells where it occurred).
-- column did_macro: Of those, units with the macro conversion.
-- column did_macro_rate: did_macro / did_count.
-- column did_macro_rate_ci_low: Wilson 95 % interval of did_macro_rate, lower bound.
-- column did_macro_rate_ci_high: Wilson 95 % interval of did_macro_rate, upper bound.
-- column did_not_count: Units that did not (contacts; or user-days in cells without it).
-- column did_not_macro: Of those, units with the macro conversion.
-- column did_not_macro_rate: did_not_macro / did_not_count.
-- column lift: did_macro_rate / did_not_macro_rate (1 = no difference).
-- column lift_ci_low: Katz log 95 % interval of the lift, lower bound.
-- column lift_ci_high: Katz log 95 % interval of the lift, upper bound.
-- column test_method: 'z' or 'fisher'; NULL when not tested.
-- column p_value: Two-sided p-value of did_macro_rate = did_not_macro_rate; NULL when not tested.
-- column q_value: Benjamini-Hochberg adjusted p-value across the tested micro conversions of the same basis.
-- column significant: q_value < 0.05.
-- column tested: False for prerequisites and rows failing the minimum-sample gate (see gate_reason).
-- column gate_reason: Why the row was not tested; NULL when tested.
-- column rank: 1 = leads most strongly to the macro: order of lift_ci_low (highest first) among the tested rows of the basis.
WITH bounds AS (
    -- GA4 still revises its most recent days: the window ends before them (build setting unsettled_days).
    SELECT min(date) AS window_start, max(date) - CAST(getvariable('sw_unsettled_days') AS INTEGER) AS window_end
    FROM staging.ga4_web_sessions
),
macro_funnels AS (
    SELECT DISTINCT source_system, funnel_name FROM staging.conversion_catalog
    WHERE tier = 'macro' AND funnel_name IS NOT NULL
),
micro AS (
    SELECT k.conversion_name, k.source_system, k.kind,
        k.kind = 'process_milestone' AND EXISTS (
            SELECT 1 FROM macro_funnels AS f WHERE f.source_system = k.source_system AND f.funnel_name = k.funnel_name
        ) AS is_prerequisite
    FROM staging.conversion_catalog AS k WHERE k.tier = 'micro'
),
cohorts AS (
    SELECT c.* FROM staging.hubspot_cohort_daily AS c, bounds AS b
    WHERE c.date BETWEEN b.window_start AND b.window_end
),
contact_totals AS (
    SELECT coalesce(sum(contacts), 0)::BIGINT AS n, coalesce(sum(contacts_with_macro), 0)::BIGINT AS n_macro
    FROM cohorts WHERE conversion_name = '(all contacts)'
),
contact_did AS (
    SELECT conversion_name, sum(contacts)::BIGINT AS did_count, sum(contacts_with_macro)::BIGINT AS did_macro
    FROM cohorts WHERE conversion_name <> '(all contacts)'
    GROUP BY ALL
),
contact_rows AS (
    SELECT 'contact' AS basis, m.conversion_name AS micro_conversion, m.kind, 'all' AS macro_conversion,
        'contacts' AS unit, m.is_prerequisite,
        coalesce(d.did_count, 0)::BIGINT AS did_count, coalesce(d.did_macro, 0)::BIGINT AS did_macro,
        (t.n - coalesce(d.did_count, 0))::BIGINT AS did_not_count,
        (t.n_macro - coalesce(d.did_macro, 0))::BIGINT AS did_not_macro
    FROM micro AS m
    CROSS JOIN contact_totals AS t
    LEFT JOIN contact_did AS d ON d.conversion_name = m.conversion_name
    WHERE m.source_system = 'hubspot'
      AND EXISTS (SELECT 1 FROM staging.conversion_catalog WHERE source_system = 'hubspot' AND tier = 'macro')
),
segment_day_rows AS (
    SELECT 'segment_day' AS basis, g.micro_conversion, m.kind, g.macro_conversion, 'user_days' AS unit,
        m.is_prerequisite,
        sum(g.did_units)::BIGINT AS did_count, sum(g.did_macro)::BIGINT AS did_macro,
        sum(g.did_not_units)::BIGINT AS did_not_count, sum(g.did_not_macro)::BIGINT AS did_not_macro
    FROM staging.ga4_micro_macro_daily AS g
    JOIN micro AS m ON m.conversion_name = g.micro_conversion
    CROSS JOIN bounds AS b
    WHERE g.date BETWEEN b.window_start AND b.window_end
    GROUP BY ALL
)
SELECT b.window_start, b.window_end, r.*
FROM (SELECT * FROM contact_rows UNION ALL SELECT * FROM segment_day_rows) AS r, bounds AS b
ORDER BY r.basis, r.micro_conversion, r.macro_conversion
