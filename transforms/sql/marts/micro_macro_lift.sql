-- model: marts.micro_macro_lift
-- write: replace_all_statistics
-- grain: one row per window_start x window_end x basis x micro_conversion x macro_conversion
-- key: window_start, window_end, basis, micro_conversion, macro_conversion
-- inputs: staging.conversion_catalog, staging.ga4_micro_macro_daily, staging.ga4_web_sessions, staging.hubspot_contact_micro_macro
-- table: Which micro conversions are associated with macro conversions (an association, never a cause): for each micro conversion, the macro rate of units with it against units without it, with a 95 % interval of the ratio, a two-sided test, Benjamini-Hochberg q-values within each basis (the family), a practical band, a minimum detectable lift and a rank by the lower bound of the lift interval. Basis 'contact' (HubSpot, unit = contacts): contacts created in the window at least follow_up_days (default 60) before its end, followed for follow_up_days from creation; a micro conversion counts only when it happened before the contact's first macro conversion (customer, closed-won deal) and within the window, the macro only within the window; Katz interval, pooled z or Fisher's exact test. Basis 'segment_day' (GA4, unit = user-days of cells): a co-occurrence association of date x segment cells, NOT of people: users of cells (date x property x channel x device x country x visitor type) where the micro conversion occurred vs users of cells of the same segment where it did not, and the share of them with the macro conversion that day; stratified by segment (Mantel-Haenszel common risk ratio), tested by permuting the micro conversion's occurrence across each segment's days (day-clustered), with the Greenland-Robins interval widened accordingly; gated when the cells without it hold less than 10 % of units; crude_lift is the unstratified ratio. A cell-level ratio depends on how cells are formed: read its direction, not its size. Process milestones of a funnel that ends in the macro (e.g. add_to_cart before purchase, opportunity before customer) are prerequisites: reported, neither tested nor ranked.
-- column window_start DATE NOT NULL: First date of the window (property-local).
-- column window_end DATE NOT NULL: Last date of the window: the last GA4 date minus the days GA4 still revises (unsettled_days, default 2).
-- column basis VARCHAR NOT NULL: 'contact' (HubSpot contacts) or 'segment_day' (GA4 date x segment cells; see the table comment).
-- column micro_conversion VARCHAR NOT NULL: Catalog micro conversion.
-- column kind VARCHAR: 'process_milestone' or 'secondary_action'.
-- column macro_conversion VARCHAR NOT NULL: Catalog macro conversion (GA4), or 'all' = any HubSpot macro conversion of the catalog (contact basis).
-- column unit VARCHAR: 'contacts' or 'user_days' (users summed over cells; a user active on two days counts twice).
-- column is_prerequisite BOOLEAN: True for a process milestone of a funnel that ends in the macro: reported, not tested, not ranked.
-- column did_count BIGINT: Units with the micro conversion (contacts of the cohort with it before the macro and within the follow-up window; or user-days in cells where it occurred, all segments: the crude total).
-- column did_macro BIGINT: Of those, units with the macro conversion (contacts: within the follow-up window).
-- column did_macro_rate DOUBLE: did_macro / did_count (crude, not stratified).
-- column did_macro_rate_ci_low DOUBLE: Wilson 95 % interval of did_macro_rate, lower bound.
-- column did_macro_rate_ci_high DOUBLE: Wilson 95 % interval of did_macro_rate, upper bound.
-- column did_not_count BIGINT: Units without it (contacts of the cohort; or user-days in cells without it, all segments: the crude total).
-- column did_not_macro BIGINT: Of those, units with the macro conversion.
-- column did_not_macro_rate DOUBLE: did_not_macro / did_not_count (crude, not stratified).
-- column lift DOUBLE: Ratio of the macro rate of units with the micro conversion to that of units without it (1 = no difference; an association). Contact basis: did_macro_rate / did_not_macro_rate. Segment_day basis: the Mantel-Haenszel common risk ratio over the segment strata (0 when no stratum has the macro on the did side; NULL when none has it on the other side).
-- column lift_ci_low DOUBLE: 95 % interval of the lift, lower bound: Katz log interval (contact basis) or Greenland-Robins interval of the log Mantel-Haenszel ratio widened by the day-permutation dispersion (segment_day basis; NULL when the lift is 0 or NULL).
-- column lift_ci_high DOUBLE: 95 % interval of the lift, upper bound (see lift_ci_low).
-- column crude_lift DOUBLE: did_macro_rate / did_not_macro_rate, unstratified. Equal to lift on the contact basis; on the segment_day basis it mixes segments with different macro rates (confounded), shown for comparison only.
-- column test_method VARCHAR: 'z' (pooled two-proportion z-test) or 'fisher' (exact) on the contact basis, 'cmh_day_permutation' (Cochran-Mantel-Haenszel numerator with its variance under permutation of the occurrence across each segment's days) on the segment_day basis; NULL when not tested.
-- column p_value DOUBLE: Two-sided p-value of no difference (segment_day: of no co-occurrence within any segment stratum beyond day-to-day swings); NULL when not tested.
-- column q_value DOUBLE: Benjamini-Hochberg adjusted p-value across the tested micro conversions of the same basis (the family): flagged rows keep the false discovery rate within 5 % per basis.
-- column min_detectable_lift DOUBLE: The smallest lift above 1 this row could detect with 80 % power at alpha 0.05 (two-sided), from its own counts and variance; NULL when not tested.
-- column significant BOOLEAN: q_value < 0.05 AND the whole lift interval lies outside the practical band 0.95-1.05 (build setting; a real but tiny difference is not flagged).
-- column tested BOOLEAN: False for prerequisites and rows failing the minimum-sample gate (see gate_reason).
-- column gate_reason VARCHAR: Why the row was not tested; NULL when tested.
-- column rank INTEGER: 1 = most strongly associated with the macro: order of lift_ci_low (highest first) among the tested rows of the basis.
-- column strata BIGINT: Segment_day basis: segments (strata) with user-days on both sides, the only ones that inform the stratified lift; NULL on the contact basis.
-- column strata_did_count BIGINT: Segment_day basis: user-days that did it, in those strata (the minimum-sample gate applies to these three stratified totals); NULL on the contact basis.
-- column strata_did_not_count BIGINT: Segment_day basis: user-days that did not, in those strata; NULL on the contact basis.
-- column strata_macro BIGINT: Segment_day basis: user-days with the macro on both sides, in those strata; NULL on the contact basis.
-- accepted basis: contact | segment_day
-- accepted kind: process_milestone | secondary_action
-- accepted unit: contacts | user_days
-- accepted test_method: z | fisher | cmh_day_permutation
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
contact_cohort AS (
    -- Contacts with the whole follow-up window inside the data: created in the window, at least
    -- follow_up_days before its end. The macro counts only within follow_up_days of creation, and a micro
    -- conversion only when it happened before the macro (and within the follow-up window): a form filled
    -- after the contact became a customer says nothing about what preceded the purchase.
    SELECT t.contact_id, t.created_at_utc, t.micro_events,
        t.macro_at_utc IS NOT NULL
            AND t.macro_at_utc < t.created_at_utc + to_days(CAST(getvariable('sw_follow_up_days') AS INTEGER))
            AS macro_in_window,
        least(coalesce(t.macro_at_utc, 'infinity'::TIMESTAMP),
              t.created_at_utc + to_days(CAST(getvariable('sw_follow_up_days') AS INTEGER))) AS micro_deadline
    FROM staging.hubspot_contact_micro_macro AS t, bounds AS b
    WHERE t.created_date BETWEEN b.window_start
        AND b.window_end - CAST(getvariable('sw_follow_up_days') AS INTEGER)
),
contact_totals AS (
    SELECT count(*)::BIGINT AS n, (count(*) FILTER (WHERE macro_in_window))::BIGINT AS n_macro FROM contact_cohort
),
contact_did AS (
    SELECT e.conversion_name, count(*)::BIGINT AS did_count,
        (count(*) FILTER (WHERE c.macro_in_window))::BIGINT AS did_macro
    FROM contact_cohort AS c, unnest(c.micro_events) AS u(e)
    WHERE e.at_utc < c.micro_deadline
    GROUP BY ALL
),
contact_rows AS (
    SELECT 'contact' AS basis, m.conversion_name AS micro_conversion, m.kind, 'all' AS macro_conversion,
        'contacts' AS unit, m.is_prerequisite,
        coalesce(d.did_count, 0)::BIGINT AS did_count, coalesce(d.did_macro, 0)::BIGINT AS did_macro,
        (t.n - coalesce(d.did_count, 0))::BIGINT AS did_not_count,
        (t.n_macro - coalesce(d.did_macro, 0))::BIGINT AS did_not_macro,
        NULL::STRUCT(did_count BIGINT, did_macro BIGINT, did_not_count BIGINT, did_not_macro BIGINT, cells BIGINT,
            did_cells BIGINT, sum_m2 DOUBLE, sum_mn DOUBLE, sum_n2 DOUBLE)[] AS strata_counts
    FROM micro AS m
    CROSS JOIN contact_totals AS t
    LEFT JOIN contact_did AS d ON d.conversion_name = m.conversion_name
    WHERE m.source_system = 'hubspot'
      AND EXISTS (SELECT 1 FROM staging.conversion_catalog WHERE source_system = 'hubspot' AND tier = 'macro')
),
segment_day_strata AS (
    -- One stratum per segment, pooled over the window's days: the segment mix confounds a pooled comparison
    -- (busy segments are where any micro event occurs, and their macro rates differ), so cells are only
    -- compared with cells of the same segment on other days.
    SELECT g.micro_conversion, g.macro_conversion, g.property_id, g.channel, g.device_category, g.country,
        g.visitor_type,
        coalesce(sum(g.users) FILTER (WHERE g.micro_occurred), 0)::BIGINT AS did_count,
        coalesce(sum(g.macro_users) FILTER (WHERE g.micro_occurred), 0)::BIGINT AS did_macro,
        coalesce(sum(g.users) FILTER (WHERE NOT g.micro_occurred), 0)::BIGINT AS did_not_count,
        coalesce(sum(g.macro_users) FILTER (WHERE NOT g.micro_occurred), 0)::BIGINT AS did_not_macro,
        -- Day cells of the segment and the sums the within-segment day-permutation variance needs
        -- (transforms/STATISTICS.md): cells, cells where the micro occurred, and sums of m^2, m n, n^2.
        count(*)::BIGINT AS cells, (count(*) FILTER (WHERE g.micro_occurred))::BIGINT AS did_cells,
        sum(g.macro_users::DOUBLE * g.macro_users) AS sum_m2, sum(g.macro_users::DOUBLE * g.users) AS sum_mn,
        sum(g.users::DOUBLE * g.users) AS sum_n2
    FROM staging.ga4_micro_macro_daily AS g, bounds AS b
    WHERE g.date BETWEEN b.window_start AND b.window_end
    GROUP BY ALL
),
segment_day_rows AS (
    SELECT 'segment_day' AS basis, s.micro_conversion, m.kind, s.macro_conversion, 'user_days' AS unit,
        m.is_prerequisite,
        sum(s.did_count)::BIGINT AS did_count, sum(s.did_macro)::BIGINT AS did_macro,
        sum(s.did_not_count)::BIGINT AS did_not_count, sum(s.did_not_macro)::BIGINT AS did_not_macro,
        -- Only segments with user-days on both sides carry information about the ratio; a fixed order keeps
        -- the floating-point sums of the statistics identical between full and incremental builds.
        coalesce(list(
            {'did_count': s.did_count, 'did_macro': s.did_macro,
             'did_not_count': s.did_not_count, 'did_not_macro': s.did_not_macro, 'cells': s.cells,
             'did_cells': s.did_cells, 'sum_m2': s.sum_m2, 'sum_mn': s.sum_mn, 'sum_n2': s.sum_n2}
            ORDER BY s.property_id, s.channel, s.device_category, s.country, s.visitor_type
        ) FILTER (WHERE s.did_count > 0 AND s.did_not_count > 0), []) AS strata_counts
    FROM segment_day_strata AS s
    JOIN micro AS m ON m.conversion_name = s.micro_conversion
    GROUP BY s.micro_conversion, m.kind, s.macro_conversion, m.is_prerequisite
)
SELECT b.window_start, b.window_end, r.*
FROM (SELECT * FROM contact_rows UNION ALL SELECT * FROM segment_day_rows) AS r, bounds AS b
ORDER BY r.basis, r.micro_conversion, r.macro_conversion
