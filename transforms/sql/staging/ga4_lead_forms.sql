-- model: staging.ga4_lead_forms
-- write: replace_dates
-- grain: one row per property_id x date x event_name x form_name x channel
-- key: property_id, date, event_name, form_name, channel
-- inputs: raw.ga4_lead_forms, staging.channel_groups
-- table: GA4 lead_forms report (generate_lead events by form), typed and deduplicated: one row per property, date, form and channel.
-- column property_id VARCHAR NOT NULL: GA4 property id.
-- column date DATE NOT NULL: Property-local date.
-- column event_name VARCHAR NOT NULL: GA4 event name (generate_lead).
-- column form_name VARCHAR NOT NULL: The form, from the custom event parameter form_name (customEvent:form_name); '(not set)' when missing.
-- column channel VARCHAR NOT NULL: GA4 default channel group, normalised.
-- column event_count BIGINT: Number of events.
-- column subject_to_thresholding BOOLEAN: True if GA4 applied data thresholding to the report this row came from.
-- column data_loss_from_other_row BOOLEAN: True if GA4 folded rows of this report into an '(other)' row.
-- column sampled BOOLEAN: True if GA4 sampled the report this row came from.
SELECT
    r.property_id,
    r.date,
    r.event_name,
    sw_label(r.custom_event_form_name) AS form_name,
    coalesce(g.channel, CASE WHEN trim(r.session_default_channel_group) = '(other)' THEN '(other)' ELSE 'Unassigned' END) AS channel,
    sum(r.event_count)::BIGINT AS event_count,
    coalesce(bool_or(r.subject_to_thresholding), false) AS subject_to_thresholding,
    coalesce(bool_or(r.data_loss_from_other_row), false) AS data_loss_from_other_row,
    coalesce(bool_or(r.sampled), false) AS sampled
FROM raw.ga4_lead_forms AS r
LEFT JOIN staging.channel_groups AS g ON g.channel_key = lower(trim(r.session_default_channel_group))
WHERE sw_in_dates(r.date)
GROUP BY ALL
