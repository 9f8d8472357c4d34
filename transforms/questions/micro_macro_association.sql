-- question: Which micro conversions are most associated with a macro conversion?
-- From marts.micro_macro_lift: the micro conversions whose doers reached a macro conversion more often
-- than the others, significantly (q < 0.05 and outside the practical band; see `significant`).
-- This is an association, not a cause: people who would buy anyway may also save to a wishlist.
-- Contact-basis rows (HubSpot people) are stronger evidence than segment_day rows (GA4 aggregates of
-- date x segment cells, stratified by segment), so they come first. Process milestones on the path
-- to the macro (add_to_cart before purchase) are prerequisites, not levers, and are left out.
-- When none clears the bar, the answer says so: the three strongest tested candidates are listed
-- with verdict 'not significant', to read as "no association shown yet".
WITH candidates AS (
    SELECT *, significant AS passes
    FROM marts.micro_macro_lift
    WHERE tested AND lift > 1 AND NOT is_prerequisite
),
outcome AS (
    SELECT coalesce(bool_or(passes), false) AS any_passes FROM candidates
),
ranked AS (
    SELECT c.*, o.any_passes,
        row_number() OVER (
            ORDER BY CASE c.basis WHEN 'contact' THEN 0 ELSE 1 END, c.lift_ci_low DESC, c.micro_conversion
        ) AS n
    FROM candidates AS c, outcome AS o
    WHERE c.passes OR NOT o.any_passes
)
SELECT
    CASE WHEN passes THEN 'significant association' ELSE 'not significant (none cleared the bar)' END AS verdict,
    basis, micro_conversion, kind, macro_conversion, unit,
    did_count, round(did_macro_rate, 4) AS did_macro_rate,
    did_not_count, round(did_not_macro_rate, 4) AS did_not_macro_rate,
    round(lift, 2) AS lift, round(lift_ci_low, 2) AS lift_ci_low, round(lift_ci_high, 2) AS lift_ci_high,
    q_value,
    format(
        '{} with {} reached {} {:.1f} times as often as those without it (95 % interval {:.1f} to {:.1f}): an association, not a cause',
        CASE basis WHEN 'contact' THEN 'contacts' ELSE 'segment-days' END, micro_conversion,
        CASE macro_conversion WHEN 'all' THEN 'a macro conversion' ELSE macro_conversion END,
        lift, lift_ci_low, lift_ci_high
    ) AS reading
FROM ranked
WHERE n <= CASE WHEN any_passes THEN 25 ELSE 3 END
ORDER BY n;
