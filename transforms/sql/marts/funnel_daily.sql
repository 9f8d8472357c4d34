-- model: marts.funnel_daily
-- partition: date_source
-- table: Each catalog funnel, step by step, per day: how many reached each step and how many were lost from the step before. GA4 funnels count events, HubSpot funnels count contacts entering each stage that day (daily flows, not cohorts: a contact entering MQL today may have become a lead last week). Every step of a GA4 funnel has a row on every date with GA4 data; every step of a CRM funnel on every date with GA4 or CRM data (count 0 when nothing happened).
-- column date: Date (property-local).
-- column funnel_name: Funnel name from the catalog.
-- column source_system: 'ga4' or 'hubspot' (a funnel stays in one source system).
-- column step_index: Step position, from 1.
-- column step_name: The catalog conversion at this step.
-- column count: Conversions at this step on this date, summed over every segment and property/portal (see count_unit).
-- column count_unit: 'events' (GA4) or 'contacts' (HubSpot stage entries).
-- column rate_from_previous: count / count of the previous step (NULL for step 1 or when the previous count is 0).
-- column rate_from_first: count / count of step 1 (NULL when step 1 is 0).
-- column drop_off: 1 - rate_from_previous: the share lost since the previous step (NULL for step 1).
-- column drop_off_count: Previous step's count minus this step's count (NULL for step 1; negative when more reached this step than the one before on that day).
WITH steps AS (
    SELECT funnel_name, source_system, funnel_step, conversion_name
    FROM staging.conversion_catalog WHERE funnel_name IS NOT NULL
),
counts AS (
    SELECT date, conversion_name, sum(conversions)::BIGINT AS n
    FROM marts.conversions_daily
    WHERE sw_in_crm_dates(date) AND conversion_name IN (SELECT conversion_name FROM steps)
    GROUP BY ALL
),
dates AS (
    -- GA4 funnels have a row per date with GA4 data; CRM funnels also on dates with CRM activity only.
    SELECT DISTINCT date, unnest(['ga4', 'hubspot']) AS source_system
    FROM marts.web_sessions_daily WHERE sw_in_crm_dates(date)
    UNION
    SELECT DISTINCT date, 'hubspot' FROM marts.conversions_daily WHERE source_system = 'hubspot' AND sw_in_crm_dates(date)
),
grid AS (
    SELECT d.date, s.funnel_name, s.source_system, s.funnel_step AS step_index, s.conversion_name AS step_name,
        coalesce(c.n, 0)::BIGINT AS count
    FROM dates AS d
    JOIN steps AS s ON s.source_system = d.source_system
    LEFT JOIN counts AS c ON c.date = d.date AND c.conversion_name = s.conversion_name
    WHERE CASE s.source_system WHEN 'ga4' THEN sw_in_dates(d.date) ELSE sw_in_crm_dates(d.date) END
)
SELECT date, funnel_name, source_system, step_index, step_name, count,
    CASE source_system WHEN 'ga4' THEN 'events' ELSE 'contacts' END AS count_unit,
    count / nullif(lag(count) OVER w, 0) AS rate_from_previous,
    count / nullif(first_value(count) OVER w, 0) AS rate_from_first,
    1 - count / nullif(lag(count) OVER w, 0) AS drop_off,
    lag(count) OVER w - count AS drop_off_count
FROM grid
WINDOW w AS (PARTITION BY date, funnel_name ORDER BY step_index)
