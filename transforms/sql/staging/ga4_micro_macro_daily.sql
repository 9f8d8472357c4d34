-- model: staging.ga4_micro_macro_daily
-- partition: date
-- table: Daily GA4 segment-day cells split by whether a micro conversion occurred in them, for micro_macro_lift with basis 'segment_day'. A cell is one date x property x channel x device x country x visitor type; GA4 aggregates carry no per-user link between two events, so this compares the macro rate (users with the macro / users, per cell, summed) in cells where the micro conversion happened against cells where it did not.
-- column date: Property-local date.
-- column micro_conversion: Catalog micro conversion (GA4 event).
-- column macro_conversion: Catalog macro conversion (GA4 event).
-- column did_cells: Cells of this date where the micro conversion occurred.
-- column did_units: Users summed over those cells (user-days).
-- column did_macro: Users with the macro conversion summed over those cells.
-- column did_not_cells: Cells of this date without the micro conversion.
-- column did_not_units: Users summed over those cells (user-days).
-- column did_not_macro: Users with the macro conversion summed over those cells.
WITH cells AS (
    SELECT property_id, date, channel, device_category, country, visitor_type, total_users
    FROM staging.ga4_web_sessions WHERE sw_in_dates(date)
),
ga4_catalog AS (
    SELECT conversion_name, tier, signal FROM staging.conversion_catalog WHERE source_system = 'ga4' AND signal_type = 'event'
),
cell_events AS (
    SELECT e.property_id, e.date, e.channel, e.device_category, e.country, e.visitor_type, k.conversion_name, k.tier,
        e.total_users
    FROM staging.ga4_events AS e JOIN ga4_catalog AS k ON k.signal = e.event_name
    WHERE sw_in_dates(e.date)
),
pairs AS (
    SELECT mi.conversion_name AS micro_conversion, ma.conversion_name AS macro_conversion
    FROM ga4_catalog AS mi CROSS JOIN ga4_catalog AS ma
    WHERE mi.tier = 'micro' AND ma.tier = 'macro'
),
flags AS (
    SELECT c.date, p.micro_conversion, p.macro_conversion, c.total_users AS units,
        coalesce(mi.total_users, 0) > 0 AS did,
        least(coalesce(ma.total_users, 0), c.total_users) AS macro_users
    FROM cells AS c
    CROSS JOIN pairs AS p
    LEFT JOIN cell_events AS mi
        ON mi.conversion_name = p.micro_conversion AND mi.property_id = c.property_id AND mi.date = c.date
       AND mi.channel = c.channel AND mi.device_category = c.device_category AND mi.country = c.country
       AND mi.visitor_type = c.visitor_type
    LEFT JOIN cell_events AS ma
        ON ma.conversion_name = p.macro_conversion AND ma.property_id = c.property_id AND ma.date = c.date
       AND ma.channel = c.channel AND ma.device_category = c.device_category AND ma.country = c.country
       AND ma.visitor_type = c.visitor_type
)
SELECT date, micro_conversion, macro_conversion,
    count(*) FILTER (WHERE did)::BIGINT AS did_cells,
    coalesce(sum(units) FILTER (WHERE did), 0)::BIGINT AS did_units,
    coalesce(sum(macro_users) FILTER (WHERE did), 0)::BIGINT AS did_macro,
    count(*) FILTER (WHERE NOT did)::BIGINT AS did_not_cells,
    coalesce(sum(units) FILTER (WHERE NOT did), 0)::BIGINT AS did_not_units,
    coalesce(sum(macro_users) FILTER (WHERE NOT did), 0)::BIGINT AS did_not_macro
FROM flags
GROUP BY ALL
