-- model: staging.ga4_micro_macro_daily
-- write: replace_dates
-- grain: one row per date x property_id x channel x device_category x country x visitor_type x micro_conversion x macro_conversion
-- key: date, property_id, channel, device_category, country, visitor_type, micro_conversion, macro_conversion
-- inputs: staging.conversion_catalog, staging.ga4_events, staging.ga4_web_sessions
-- table: GA4 segment-day cells for micro_macro_lift with basis 'segment_day': one row per cell (date x property x channel x device x country x visitor type) and (micro, macro) pair of the catalog, saying whether the micro conversion occurred in the cell, its users and its users with the macro conversion. GA4 aggregates carry no per-user link between two events, so the mart compares the macro rate of cells where the micro conversion occurred with cells of the same segment (property x channel x device x country x visitor type) where it did not, on other days: a Mantel-Haenszel analysis with one stratum per segment.
-- column date DATE NOT NULL: Property-local date.
-- column property_id VARCHAR NOT NULL: GA4 property.
-- column channel VARCHAR NOT NULL: GA4 default channel group, normalised as in staging.ga4_web_sessions.
-- column device_category VARCHAR NOT NULL: GA4 device category (lower case), as in staging.ga4_web_sessions.
-- column country VARCHAR NOT NULL: GA4 country name, as in staging.ga4_web_sessions.
-- column visitor_type VARCHAR NOT NULL: GA4 newVsReturning ('new', 'returning', '(not set)').
-- column micro_conversion VARCHAR NOT NULL: Catalog micro conversion (GA4 event).
-- column macro_conversion VARCHAR NOT NULL: Catalog macro conversion (GA4 event).
-- column micro_occurred BOOLEAN: True when at least one user of the cell triggered the micro conversion's event that day.
-- column users BIGINT: Users of the cell (GA4 totalUsers of the sessions report; one day, so user-days).
-- column macro_users BIGINT: Users of the cell who triggered the macro conversion's event that day (capped at users).
-- accepted visitor_type: new | returning | (not set)
WITH cells AS (
    SELECT property_id, date, channel, device_category, country, visitor_type, total_users
    FROM staging.ga4_web_sessions WHERE sw_in_dates(date)
),
ga4_catalog AS (
    SELECT conversion_name, tier, signal FROM staging.conversion_catalog WHERE source_system = 'ga4' AND signal_type = 'event'
),
cell_events AS (
    SELECT e.property_id, e.date, e.channel, e.device_category, e.country, e.visitor_type, k.conversion_name,
        e.total_users
    FROM staging.ga4_events AS e JOIN ga4_catalog AS k ON k.signal = e.event_name
    WHERE sw_in_dates(e.date)
),
pairs AS (
    SELECT mi.conversion_name AS micro_conversion, ma.conversion_name AS macro_conversion
    FROM ga4_catalog AS mi CROSS JOIN ga4_catalog AS ma
    WHERE mi.tier = 'micro' AND ma.tier = 'macro'
)
SELECT c.date, c.property_id, c.channel, c.device_category, c.country, c.visitor_type,
    p.micro_conversion, p.macro_conversion,
    coalesce(mi.total_users, 0) > 0 AS micro_occurred,
    c.total_users::BIGINT AS users,
    least(coalesce(ma.total_users, 0), c.total_users)::BIGINT AS macro_users
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
