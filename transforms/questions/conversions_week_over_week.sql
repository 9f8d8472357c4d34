-- question: How many conversions did we get this week, against last week?
-- "This week" is the latest 7 days in the file (ending on the last date GA4 reported), "last week"
-- the 7 days before it, so the comparison is always of two whole weeks of data, whatever the weekday.
-- GA4 still revises its last ~2-3 days: a small gap on the newest days can close on the next run.
-- One row per conversion of the catalog (both tiers), macro conversions first.
WITH latest AS (
    SELECT max(date) AS this_week_end FROM marts.web_sessions_daily
),
weeks AS (
    SELECT this_week_end - 6 AS this_week_start, this_week_end,
        this_week_end - 13 AS last_week_start, this_week_end - 7 AS last_week_end
    FROM latest
),
counts AS (
    SELECT c.conversion_name,
        sum(c.conversions) FILTER (WHERE c.date BETWEEN w.this_week_start AND w.this_week_end) AS this_week,
        sum(c.conversions) FILTER (WHERE c.date BETWEEN w.last_week_start AND w.last_week_end) AS last_week
    FROM marts.conversions_daily AS c, weeks AS w
    WHERE c.date BETWEEN w.last_week_start AND w.this_week_end
    GROUP BY c.conversion_name
)
SELECT k.tier, k.source_system, k.conversion_name,
    w.this_week_start, w.this_week_end,
    coalesce(n.this_week, 0)::BIGINT AS this_week,
    coalesce(n.last_week, 0)::BIGINT AS last_week,
    (coalesce(n.this_week, 0) - coalesce(n.last_week, 0))::BIGINT AS change,
    -- NULL when last week had none: a change from zero has no percentage.
    round(100.0 * (coalesce(n.this_week, 0) - n.last_week) / nullif(n.last_week, 0), 1) AS change_pct
FROM marts.conversion_catalog AS k
CROSS JOIN weeks AS w
LEFT JOIN counts AS n USING (conversion_name)
ORDER BY k.tier, k.source_system, coalesce(n.this_week, 0) DESC, k.conversion_name;
