-- model: staging.hubspot_lifecycle_stages
-- write: replace_all
-- grain: one row per portal_id x stage
-- key: portal_id, stage
-- inputs: raw.hubspot_pipelines, raw.hubspot_properties
-- table: Contact lifecycle stages DISCOVERED per portal from the properties API: every hs_v2_date_entered_<stage> contact property, with the stage's label and order from the lifecycle pipeline when known. Custom stages appear here without any code change.
-- column portal_id VARCHAR NOT NULL: HubSpot portal (account) id.
-- column stage VARCHAR NOT NULL: Stage internal value (the <stage> of hs_v2_date_entered_<stage>), e.g. marketingqualifiedlead or a custom stage id.
-- column property_name VARCHAR: The contact property holding the stage-entry timestamp.
-- column stage_label VARCHAR: Stage label from the contacts lifecycle pipeline; the internal value when the pipeline does not list it.
-- column display_order INTEGER: Stage position in the lifecycle pipeline (NULL when the pipeline does not list it).
WITH discovered AS (
    SELECT DISTINCT portal_id, name AS property_name, substr(name, 20) AS stage
    FROM raw.hubspot_properties
    WHERE object_type = 'contacts' AND starts_with(name, 'hs_v2_date_entered_') AND length(name) > 19
),
pipeline_stages AS (
    SELECT portal_id, stage_id, min(stage_label) AS stage_label, min(display_order) AS display_order
    FROM raw.hubspot_pipelines
    WHERE object_type = 'contacts'
    GROUP BY ALL
)
SELECT d.portal_id, d.stage, d.property_name, coalesce(p.stage_label, d.stage) AS stage_label,
    p.display_order::INTEGER AS display_order
FROM discovered AS d
LEFT JOIN pipeline_stages AS p ON p.portal_id = d.portal_id AND p.stage_id = d.stage
