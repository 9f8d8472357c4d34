-- model: marts.funnel_daily
-- write: replace_dates_by_source
-- grain: one row per date x source_system x funnel_name x step_name x property_id x portal_id
-- key: date, source_system, funnel_name, step_name, property_id, portal_id
-- inputs: marts.conversions_daily, marts.web_sessions_daily, staging.conversion_catalog, staging.hubspot_contact_facts
-- table: Each catalog funnel, step by step, per day: how many reached each step and how many were lost from the step before. GA4 funnels count EVENTS per day (GA4 aggregates carry no per-user link between steps). HubSpot (CRM) funnels count COHORTS: the date is the contacts' creation date (property-local), and the count at step k is the contacts created that day who have reached step k or any later step of the funnel by now (merged-away records left out, archived kept), so counts never grow along the funnel and every CRM rate lies in [0, 1]; a cohort's row changes as its contacts progress. Every step of a GA4 funnel has a row on every date with GA4 data; every step of a CRM funnel on every date with GA4 data or created contacts (count 0 when none).
-- column date DATE NOT NULL: GA4: date of the events (property-local). HubSpot: creation date of the contact cohort (property-local).
-- column funnel_name VARCHAR NOT NULL: Funnel name from the catalog.
-- column source_system VARCHAR NOT NULL: 'ga4' or 'hubspot' (a funnel stays in one source system).
-- column step_index INTEGER: Step position, from 1.
-- column step_name VARCHAR NOT NULL: The catalog conversion at this step.
-- column count BIGINT: GA4: events of this step on this date. HubSpot: contacts of the date's creation cohort that reached this step or a later one of the funnel by now. Summed over every segment and property/portal (see count_unit).
-- column count_unit VARCHAR: 'events' (GA4, per day) or 'contacts (cohort by created date)' (HubSpot).
-- column rate_from_previous DOUBLE: count / count of the previous step, a proportion in [0, 1]. NULL for step 1, when the previous count is 0, or (GA4 only: events are not nested) when this step counted more events than the previous one that day; drop_off_count is then negative.
-- column rate_from_first DOUBLE: count / count of step 1, a proportion in [0, 1]. NULL when step 1 is 0 or (GA4 only) when this step counted more events than step 1 that day.
-- column drop_off DOUBLE: 1 - rate_from_previous: the share lost since the previous step (NULL whenever rate_from_previous is).
-- column drop_off_count BIGINT: Previous step's count minus this step's count (NULL for step 1; never negative for HubSpot cohorts; negative for GA4 when more events reached this step than the one before on that day).
-- accepted source_system: ga4 | hubspot
-- accepted count_unit: events | contacts (cohort by created date)
-- column property_id VARCHAR: GA4 funnels: the property counted. HubSpot funnels: the property the portal is paired with (NULL when unpaired).
-- column portal_id VARCHAR: HubSpot funnels: the portal whose contacts form the cohort (creation dates in its own time zone); NULL for GA4 funnels.
WITH steps AS (
    SELECT funnel_name, source_system, funnel_step, conversion_name
    FROM staging.conversion_catalog WHERE funnel_name IS NOT NULL
),
ga4_counts AS (
    SELECT date, source_id AS property_id, NULL::VARCHAR AS portal_id, conversion_name, sum(conversions)::BIGINT AS n
    FROM marts.conversions_daily
    WHERE source_system = 'ga4' AND sw_in_dates(date)
      AND conversion_name IN (SELECT conversion_name FROM steps WHERE source_system = 'ga4')
    GROUP BY ALL
),
crm_deepest AS (
    -- The deepest step of each CRM funnel a contact has reached: it counts at that step and every earlier one.
    SELECT f.portal_id, f.contact_id, f.created_date AS date, s.funnel_name, max(s.funnel_step) AS deepest_step
    FROM (
        SELECT portal_id, contact_id, created_date, unnest(conversions) AS conversion_name
        FROM staging.hubspot_contact_facts
        WHERE created_date IS NOT NULL AND sw_in_crm_dates(created_date)
    ) AS f
    JOIN steps AS s ON s.source_system = 'hubspot' AND s.conversion_name = f.conversion_name
    GROUP BY ALL
),
crm_counts AS (
    -- A portal's cohorts (dates in its own zone) stand next to its paired property (transforms/zones.py).
    SELECT d.date, sw_portal_property(d.portal_id) AS property_id, d.portal_id, s.conversion_name, count(*)::BIGINT AS n
    FROM crm_deepest AS d
    JOIN steps AS s ON s.source_system = 'hubspot' AND s.funnel_name = d.funnel_name AND s.funnel_step <= d.deepest_step
    GROUP BY ALL
),
counts AS (
    SELECT * FROM ga4_counts
    UNION ALL
    SELECT * FROM crm_counts
),
dates AS (
    -- GA4 funnels have a row per property and date with GA4 data; CRM funnels per portal on its property's GA4
    -- dates (every property's when no portal is paired with any) and on its creation dates.
    SELECT DISTINCT date, property_id, NULL::VARCHAR AS portal_id, 'ga4' AS source_system
    FROM marts.web_sessions_daily WHERE sw_in_dates(date)
    UNION
    SELECT DISTINCT date, property_id, sw_property_portal(property_id), 'hubspot' FROM marts.web_sessions_daily
    WHERE sw_in_crm_dates(date)
      AND (sw_property_portal(property_id) IS NOT NULL OR cardinality(getvariable('sw_property_portals')) = 0)
    UNION
    SELECT DISTINCT created_date, sw_portal_property(portal_id), portal_id, 'hubspot' FROM staging.hubspot_contact_facts
    WHERE created_date IS NOT NULL AND sw_in_crm_dates(created_date)
),
grid AS (
    SELECT d.date, d.property_id, d.portal_id, s.funnel_name, s.source_system, s.funnel_step AS step_index,
        s.conversion_name AS step_name, coalesce(c.n, 0)::BIGINT AS count
    FROM dates AS d
    JOIN steps AS s ON s.source_system = d.source_system
    LEFT JOIN counts AS c ON c.date = d.date AND c.conversion_name = s.conversion_name
        AND c.property_id IS NOT DISTINCT FROM d.property_id AND c.portal_id IS NOT DISTINCT FROM d.portal_id
),
ratios AS (
    SELECT *,
        count / nullif(lag(count) OVER w, 0) AS raw_rate_from_previous,
        count / nullif(first_value(count) OVER w, 0) AS raw_rate_from_first,
        lag(count) OVER w - count AS drop_off_count
    FROM grid
    WINDOW w AS (PARTITION BY date, funnel_name, property_id, portal_id ORDER BY step_index)
)
SELECT date, funnel_name, source_system, step_index, step_name, count,
    CASE source_system WHEN 'ga4' THEN 'events' ELSE 'contacts (cohort by created date)' END AS count_unit,
    -- GA4 event counts are not nested: a step above its predecessor has no proportion (left NULL, not capped).
    CASE WHEN raw_rate_from_previous <= 1 THEN raw_rate_from_previous END AS rate_from_previous,
    CASE WHEN raw_rate_from_first <= 1 THEN raw_rate_from_first END AS rate_from_first,
    CASE WHEN raw_rate_from_previous <= 1 THEN 1 - raw_rate_from_previous END AS drop_off,
    drop_off_count,
    property_id,
    portal_id
FROM ratios
