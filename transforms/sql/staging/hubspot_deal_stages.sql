-- model: staging.hubspot_deal_stages
-- write: replace_all
-- grain: one row per portal_id x pipeline_id x stage_id
-- key: portal_id, pipeline_id, stage_id
-- inputs: raw.hubspot_pipelines
-- table: Deal pipeline stages per portal from the pipelines API, with whether each stage is closed and closed-won.
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column pipeline_id VARCHAR NOT NULL: Deal pipeline id.
-- column pipeline_label VARCHAR: Deal pipeline label.
-- column stage_id VARCHAR NOT NULL: Deal stage id.
-- column stage_label VARCHAR: Deal stage label.
-- column display_order INTEGER: Stage position in the pipeline.
-- column is_closed BOOLEAN: True for closed stages (won or lost).
-- column probability DOUBLE: Win probability HubSpot attaches to the stage.
-- column is_won BOOLEAN: True for a closed stage with win probability 1 (HubSpot's closed-won).
SELECT portal_id, pipeline_id, min(pipeline_label) AS pipeline_label, stage_id, min(stage_label) AS stage_label,
    min(display_order)::INTEGER AS display_order, bool_or(is_closed) AS is_closed, max(probability)::DOUBLE AS probability,
    bool_or(is_closed) AND coalesce(max(probability), 0) >= 1.0 AS is_won
FROM raw.hubspot_pipelines
WHERE object_type = 'deals'
GROUP BY portal_id, pipeline_id, stage_id
