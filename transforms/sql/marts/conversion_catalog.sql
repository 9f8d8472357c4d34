-- model: marts.conversion_catalog
-- write: replace_all
-- grain: one row per conversion_name
-- key: conversion_name
-- inputs: staging.conversion_catalog
-- table: Every tracked conversion, from the validated conversion catalog file (one row per conversion).
-- column conversion_name VARCHAR NOT NULL: Unique name of the conversion, used in every other mart.
-- column source_system VARCHAR: 'ga4' or 'hubspot'.
-- column signal_type VARCHAR: What the signal is: 'event' (GA4 event name), 'lifecycle_stage', 'deal_won' (deal pipeline id or *) or 'form' (HubSpot form conversion event name).
-- column signal VARCHAR: The GA4 event name, lifecycle stage internal value, deal pipeline id (* = any) or form name.
-- column tier VARCHAR: 'micro' (a signal of intent) or 'macro' (the goal).
-- column kind VARCHAR: For micro conversions: 'process_milestone' (a step on the path) or 'secondary_action' (a signal off the path); NULL for macro.
-- column funnel_name VARCHAR: Funnel this conversion is a step of (NULL if none).
-- column funnel_step INTEGER: Position in that funnel, from 1, without gaps.
-- column value DOUBLE: Fixed value per conversion from the catalog (NULL if the value comes from the data or there is none).
-- column value_source VARCHAR: Where conversion value comes from: 'fixed' (column value), 'event_value' (GA4 event value), 'deal_amount' (HubSpot deal amount) or NULL (no value).
-- column description VARCHAR: Free-text description from the catalog.
-- column catalog_file VARCHAR: File name of the catalog the conversion came from.
-- column catalog_line INTEGER: Line of the conversion's entry in that file.
-- accepted source_system: ga4 | hubspot
-- accepted signal_type: event | lifecycle_stage | deal_won | form
-- accepted tier: micro | macro
-- accepted kind: process_milestone | secondary_action
-- accepted value_source: fixed | event_value | deal_amount
SELECT conversion_name, source_system, signal_type, signal, tier, kind, funnel_name, funnel_step, value, value_source,
    description, catalog_file, catalog_line
FROM staging.conversion_catalog
