-- model: marts.web_sessions_daily
-- partition: date
-- table: Web denominators per day, GA4 property and segment (channel x device x country x visitor type), from the GA4 web_sessions report. Sessions are additive; total_users and new_users are distinct counts of THIS row and must not be summed across days or segments (use sessions, or say 'user-days').
-- column date: Property-local date (the GA4 property's reporting time zone).
-- column property_id: GA4 property id.
-- column channel: GA4 default channel group.
-- column device_category: Device category (desktop, mobile, tablet).
-- column country: Country.
-- column visitor_type: 'new' or 'returning' (GA4 newVsReturning).
-- column sessions: Sessions (additive).
-- column engaged_sessions: Engaged sessions (additive).
-- column total_users: Distinct users of this date and segment (GA4 totalUsers; NOT additive across rows).
-- column new_users: Distinct new users of this date and segment (GA4 newUsers; NOT additive across rows).
-- column engagement_rate: engaged_sessions / sessions.
-- column subject_to_thresholding: True if GA4 applied data thresholding (rows with few users withheld) to this report.
-- column data_loss_from_other_row: True if GA4 folded some rows of this report into '(other)'.
-- column sampled: True if GA4 sampled this report.
SELECT date, property_id, channel, device_category, country, visitor_type, sessions, engaged_sessions, total_users,
    new_users, engaged_sessions / nullif(sessions, 0) AS engagement_rate,
    subject_to_thresholding, data_loss_from_other_row, sampled
FROM staging.ga4_web_sessions
WHERE sw_in_dates(date)
