-- model: staging.time_to_convert_km
-- write: replace_all
-- grain: one row per channel x from_step x to_step x elapsed
-- key: channel, from_step, to_step, elapsed
-- inputs: staging.conversion_catalog, staging.hubspot_contact_stage_events, staging.hubspot_contacts, staging.hubspot_deals, staging.hubspot_merges
-- table: Kaplan-Meier steps behind marts.time_to_convert: one row per group (channel or 'All channels' x from-step x to-step) and distinct EVENT time (plus the group's first and last observed time, where events may be 0), with the risk set, the events, the survival estimate and Greenwood's sum. Subjects are the live contacts (merged-away records left out, archived kept) that reached the from-step; the from and to times are the FIRST time the contact reached that CRM funnel step OR ANY LATER ONE (re-entries ignored; a skipped step counts as reached when a later one is entered, as in marts.funnel_daily), and for a closed-won deal the earliest close instant of a won deal. A contact that reached the to-step at or before the from-step converts at 0 days. Contacts that have not converted are censored at censor_at_utc (the data's as-of instant), never dropped.
-- column channel VARCHAR NOT NULL: The contacts' channel (original source mapped onto GA4 default channel groups), or 'All channels'.
-- column from_step VARCHAR NOT NULL: Where the clock starts: 'contact_created' or a CRM funnel step of the catalog (e.g. lifecycle_lead).
-- column to_step VARCHAR NOT NULL: The conversion the clock waits for: a later CRM funnel step or a HubSpot deal-won macro conversion of the catalog.
-- column t_days DOUBLE: Observed time: days from the from-step to the to-step (fractional days).
-- column elapsed INTERVAL NOT NULL: t_days as an interval (millisecond precision); with channel, from_step and to_step it identifies the row.
-- column at_risk BIGINT: Subjects still unconverted and under observation just before t_days (the risk set).
-- column events BIGINT: Subjects converting at exactly t_days (0 on a first/last row without events).
-- column survival DOUBLE: Kaplan-Meier estimate of the share NOT yet converted right after t_days (product of 1 - events/at_risk up to t_days).
-- column greenwood_sum DOUBLE: Running sum of events / (at_risk x (at_risk - events)) (Greenwood's variance of log survival); NULL once every subject at risk has converted.
-- column censor_at_utc TIMESTAMP: Instant at which unconverted contacts are censored: the latest last-modified instant among the contacts (the HubSpot data's as-of time, i.e. the build's view of 'now').
WITH censor AS (
    SELECT max(updated_at_utc) AS censor_at_utc FROM staging.hubspot_contacts
),
contacts AS (
    SELECT c.portal_id, c.contact_id, c.channel, c.created_at_utc
    FROM staging.hubspot_contacts AS c
    WHERE c.merged_into IS NULL AND c.created_at_utc IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM staging.hubspot_merges AS m WHERE m.portal_id = c.portal_id AND m.merged_id = c.contact_id)
),
funnel AS (
    -- The CRM funnel(s) of the catalog: lifecycle-stage steps in funnel order.
    SELECT funnel_name, funnel_step, conversion_name, signal AS stage
    FROM staging.conversion_catalog
    WHERE source_system = 'hubspot' AND signal_type = 'lifecycle_stage' AND funnel_name IS NOT NULL
),
first_entry AS (
    SELECT portal_id, contact_id, stage, min(entered_at_utc) AS first_at
    FROM staging.hubspot_contact_stage_events WHERE entered_at_utc IS NOT NULL
    GROUP BY ALL
),
reached AS (
    -- Step k is reached at the first entry into step k or any later step of its funnel.
    SELECT e.portal_id, e.contact_id, f.funnel_name, f.funnel_step AS step_order, f.conversion_name AS step,
        min(e.first_at) AS at_utc
    FROM funnel AS f
    JOIN funnel AS later ON later.funnel_name = f.funnel_name AND later.funnel_step >= f.funnel_step
    JOIN first_entry AS e ON e.stage = later.stage
    GROUP BY ALL
),
won AS (
    SELECT d.portal_id, d.contact_id, k.conversion_name AS step, min(d.closed_at_utc) AS at_utc
    FROM staging.hubspot_deals AS d
    JOIN staging.conversion_catalog AS k ON k.source_system = 'hubspot' AND k.signal_type = 'deal_won'
        AND (k.signal = '*' OR k.signal = d.pipeline)
    WHERE d.is_closed_won AND d.contact_id IS NOT NULL AND d.closed_at_utc IS NOT NULL
    GROUP BY ALL
),
from_points AS (
    SELECT portal_id, contact_id, f.funnel_name, 0 AS step_order, 'contact_created' AS step, created_at_utc AS at_utc
    FROM contacts, (SELECT DISTINCT funnel_name FROM funnel) AS f
    UNION ALL
    SELECT portal_id, contact_id, funnel_name, step_order, step, at_utc FROM reached
),
pairs AS (
    -- from-step -> every later funnel step, and -> every deal-won conversion.
    SELECT DISTINCT f.funnel_name, f.step_order AS from_order, f.step AS from_step, t.funnel_step AS to_order,
        t.conversion_name AS to_step, false AS to_is_deal
    FROM (SELECT DISTINCT funnel_name, 0 AS step_order, 'contact_created' AS step FROM funnel
          UNION ALL SELECT funnel_name, funnel_step, conversion_name FROM funnel) AS f
    JOIN funnel AS t ON t.funnel_name = f.funnel_name AND t.funnel_step > f.step_order
    UNION ALL
    SELECT DISTINCT f.funnel_name, f.step_order, f.step, 1000, k.conversion_name, true
    FROM (SELECT DISTINCT funnel_name, 0 AS step_order, 'contact_created' AS step FROM funnel
          UNION ALL SELECT funnel_name, funnel_step, conversion_name FROM funnel
          WHERE funnel_step < (SELECT max(funnel_step) FROM funnel AS x WHERE x.funnel_name = funnel.funnel_name)) AS f,
        (SELECT DISTINCT conversion_name FROM staging.conversion_catalog
         WHERE source_system = 'hubspot' AND signal_type = 'deal_won') AS k
),
subjects AS (
    SELECT c.channel, p.from_step, p.to_step,
        coalesce(t.at_utc, w.at_utc) AS to_at_utc, f.at_utc AS from_at_utc, censor.censor_at_utc
    FROM pairs AS p
    JOIN from_points AS f ON f.funnel_name = p.funnel_name AND f.step = p.from_step
    JOIN contacts AS c ON c.portal_id = f.portal_id AND c.contact_id = f.contact_id
    LEFT JOIN reached AS t ON NOT p.to_is_deal AND t.portal_id = f.portal_id AND t.contact_id = f.contact_id
        AND t.funnel_name = p.funnel_name AND t.step = p.to_step
    LEFT JOIN won AS w ON p.to_is_deal AND w.portal_id = f.portal_id AND w.contact_id = f.contact_id AND w.step = p.to_step,
        censor
    WHERE f.at_utc <= censor.censor_at_utc
),
durations AS (
    SELECT channel, from_step, to_step, censor_at_utc,
        coalesce(to_at_utc <= censor_at_utc, false) AS converted,
        greatest(0, epoch_ms(CASE WHEN to_at_utc <= censor_at_utc THEN to_at_utc ELSE censor_at_utc END)
            - epoch_ms(from_at_utc)) AS t_ms
    FROM subjects
),
grouped AS (
    -- Each channel, and all contacts together, in one pass.
    SELECT CASE WHEN grouping(channel) = 1 THEN 'All channels' ELSE channel END AS channel, from_step, to_step,
        t_ms / 86400000.0 AS t_days, t_ms, count(*) AS n, count(*) FILTER (converted) AS d,
        any_value(censor_at_utc) AS censor_at_utc
    FROM durations
    GROUP BY GROUPING SETS ((channel, from_step, to_step, t_ms), (from_step, to_step, t_ms))
),
risk AS (
    SELECT *, sum(n) OVER (PARTITION BY channel, from_step, to_step ORDER BY t_days DESC
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS at_risk,
        t_days = min(t_days) OVER (PARTITION BY channel, from_step, to_step) AS is_first,
        t_days = max(t_days) OVER (PARTITION BY channel, from_step, to_step) AS is_last
    FROM grouped
),
steps AS (
    SELECT channel, from_step, to_step, t_days, t_ms, at_risk::BIGINT AS at_risk, d::BIGINT AS events, censor_at_utc,
        CASE WHEN d < at_risk THEN ln(1 - d::DOUBLE / at_risk) END AS log_term,
        CASE WHEN d < at_risk THEN d::DOUBLE / (at_risk::DOUBLE * (at_risk - d)) END AS gw_term,
        d > 0 AND d >= at_risk AS exhausted
    FROM risk WHERE d > 0 OR is_first OR is_last
)
SELECT channel, from_step, to_step, t_days, to_milliseconds(t_ms) AS elapsed, at_risk, events,
    CASE WHEN bool_or(exhausted) OVER w THEN 0.0 ELSE exp(sum(log_term) OVER w) END AS survival,
    CASE WHEN NOT bool_or(exhausted) OVER w THEN sum(gw_term) OVER w END AS greenwood_sum,
    censor_at_utc
FROM steps
WINDOW w AS (PARTITION BY channel, from_step, to_step ORDER BY t_days ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY channel, from_step, to_step, t_days
