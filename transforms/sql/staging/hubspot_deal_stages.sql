-- model: staging.hubspot_deal_stages
-- partition: full
-- table: Deal pipeline stages per portal from the pipelines API, with whether each stage is closed and closed-won.
-- column portal_id: HubSpot portal id.
-- column pipeline_id: Deal pipeline id.
-- column pipeline_label: Deal pipeline label.
-- column stage_id: Deal stage id.
-- column stage_label: Deal stage label.
-- column display_order: Stage position in the pipeline.
-- column is_closed: True for closed stages (won or lost).
-- column probability: Win probability HubSpot attaches to the stage.
-- column is_won: True for a closed stage with win probability 1 (HubSpot's closed-won).
SELECT portal_id, pipeline_id, min(pipeline_label) AS pipeline_label, stage_id, min(stage_label) AS stage_label,
    min(display_order)::INTEGER AS display_order, bool_or(is_closed) AS is_closed, max(probability)::DOUBLE AS probability,
    bool_or(is_closed) AND coalesce(max(probability), 0) >= 1.0 AS is_won
FROM raw.hubspot_pipelines
WHERE object_type = 'deals'
GROUP BY portal_id, pipeline_id, stage_id
