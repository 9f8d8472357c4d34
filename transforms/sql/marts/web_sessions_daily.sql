-- model: marts.web_sessions_daily
-- write: replace_dates
-- grain: one row per date x property_id x channel x device_category x country x visitor_type
-- key: date, property_id, channel, device_category, country, visitor_type
-- inputs: staging.ga4_web_sessions
-- table: Web denominators per day, GA4 property and segment (channel x device x country x visitor type), from the GA4 web_sessions report. Sessions are additive; total_users and new_users are distinct counts of THIS row and must not be summed across days or segments (use sessions, or say 'user-days').
-- column date DATE NOT NULL: Property-local date (the GA4 property's reporting time zone).
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column channel VARCHAR NOT NULL: GA4 default channel group.
-- column device_category VARCHAR NOT NULL: Device category (desktop, mobile, tablet).
-- column country VARCHAR NOT NULL: Country.
-- column visitor_type VARCHAR NOT NULL: 'new' or 'returning' (GA4 newVsReturning).
-- column sessions BIGINT: Sessions (additive).
-- column engaged_sessions BIGINT: Engaged sessions (additive).
-- column total_users BIGINT: Distinct users of this date and segment (GA4 totalUsers; NOT additive across rows).
-- column new_users BIGINT: Distinct new users of this date and segment (GA4 newUsers; NOT additive across rows).
-- column engagement_rate DOUBLE: engaged_sessions / sessions.
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding (rows with few users withheld) to this report.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded some rows of this report into '(other)'.
-- column sampled BOOLEAN: True if GA4 sampled this report.
SELECT date, property_id, channel, device_category, country, visitor_type, sessions, engaged_sessions, total_users,
    new_users, engaged_sessions / nullif(sessions, 0) AS engagement_rate,
    subject_to_thresholding, data_loss_from_other_row, sampled
FROM staging.ga4_web_sessions
WHERE sw_in_dates(date)
