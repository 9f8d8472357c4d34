-- question: Which micro conversions are most associated with a macro conversion?
-- From marts.micro_macro_lift: the micro conversions whose doers reached a macro conversion more often
-- than the others, significantly (q < 0.05 and outside the practical band; see `significant`).
-- This is an association, not a cause: people who would buy anyway may also save to a wishlist.
-- Contact-basis rows (HubSpot people) are stronger evidence than segment_day rows (GA4 aggregates of
-- date x segment cells, stratified by segment), so they come first. Process milestones on the path
-- to the macro (add_to_cart before purchase) are prerequisites, not levers, and are left out.
SELECT basis, micro_conversion, kind, macro_conversion, unit,
    did_count, round(did_macro_rate, 4) AS did_macro_rate,
    did_not_count, round(did_not_macro_rate, 4) AS did_not_macro_rate,
    round(lift, 2) AS lift, round(lift_ci_low, 2) AS lift_ci_low, round(lift_ci_high, 2) AS lift_ci_high,
    q_value,
    format(
        '{} with {} reached {} {:.1f} times as often as {} without it (95 % interval {:.1f} to {:.1f}): an association, not a cause',
        CASE basis WHEN 'contact' THEN 'contacts' ELSE 'segment-days' END, micro_conversion,
        CASE macro_conversion WHEN 'all' THEN 'a macro conversion' ELSE macro_conversion END,
        lift, 'those', lift_ci_low, lift_ci_high
    ) AS reading
FROM marts.micro_macro_lift
WHERE significant AND lift > 1 AND NOT is_prerequisite
ORDER BY CASE basis WHEN 'contact' THEN 0 ELSE 1 END, lift_ci_low DESC, micro_conversion;
