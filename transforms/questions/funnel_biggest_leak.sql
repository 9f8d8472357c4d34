-- question: Where does each funnel leak most?
-- For every funnel of the catalog, the step that loses the largest share of the previous step,
-- over the whole window in the file (counts summed over days, the rate recomputed from the sums).
-- GA4 funnels count events; the HubSpot funnel counts contacts of each creation-date cohort that
-- reached the step by now, so cohorts younger than a sales cycle (the last ~6 weeks) have not
-- finished: the CRM funnel only uses cohorts at least 42 days old when the file has any.
WITH bounds AS (
    SELECT max(date) AS last_date FROM marts.funnel_daily
),
mature AS (
    SELECT f.* FROM marts.funnel_daily AS f, bounds AS b
    WHERE f.source_system <> 'hubspot'
       OR f.date <= b.last_date - 42
       OR NOT EXISTS (SELECT 1 FROM marts.funnel_daily AS g WHERE g.source_system = 'hubspot' AND g.date <= b.last_date - 42)
),
steps AS (
    SELECT funnel_name, source_system, step_index, step_name, any_value(count_unit) AS count_unit,
        min(date) AS first_date, max(date) AS last_date, sum(count)::BIGINT AS count
    FROM mature
    GROUP BY ALL
),
transitions AS (
    SELECT funnel_name, source_system, count_unit, first_date, last_date,
        lag(step_name) OVER w AS from_step, step_name AS to_step,
        lag(count) OVER w AS from_count, count AS to_count
    FROM steps
    WINDOW w AS (PARTITION BY funnel_name ORDER BY step_index)
),
leaks AS (
    SELECT *, from_count - to_count AS lost,
        round(1 - to_count / nullif(from_count, 0), 4) AS drop_off,
        row_number() OVER (PARTITION BY funnel_name ORDER BY 1 - to_count / nullif(from_count, 0) DESC NULLS LAST) AS leak_rank
    FROM transitions
    WHERE from_step IS NOT NULL
)
SELECT funnel_name, source_system, count_unit, first_date, last_date, from_step, to_step,
    from_count, to_count, lost, drop_off
FROM leaks
WHERE leak_rank = 1
ORDER BY drop_off DESC, funnel_name;
