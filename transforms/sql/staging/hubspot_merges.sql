-- model: staging.hubspot_merges
-- write: replace_all
-- grain: one row per portal_id x merged_id
-- key: portal_id, merged_id
-- inputs: staging.hubspot_contacts
-- table: Merged-away contacts: one row per (portal, merged id) naming the surviving contact, from the survivors' hs_merged_object_ids and from records that carry merged_into. A merged-away record's history lives on its survivor, so the marts leave it out (it would be counted twice).
-- column portal_id VARCHAR NOT NULL: HubSpot portal id.
-- column merged_id VARCHAR NOT NULL: Id of the contact that was merged away.
-- column survivor_id VARCHAR: Id of the contact it was merged into.
SELECT DISTINCT portal_id, merged_id, survivor_id
FROM (
    SELECT portal_id, unnest(merged_object_ids) AS merged_id, contact_id AS survivor_id
    FROM staging.hubspot_contacts
    WHERE len(merged_object_ids) > 0
    UNION ALL
    SELECT portal_id, contact_id, merged_into FROM staging.hubspot_contacts WHERE merged_into IS NOT NULL
)
