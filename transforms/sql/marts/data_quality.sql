-- model: marts.data_quality
-- write: replace_all
-- grain: one row per run_id x source x source_id x request x mode x start_date x end_date x started_at x finished_at x error x extra x loaded_at
-- key: run_id, source, source_id, request, mode, start_date, end_date, started_at, finished_at, error, extra, loaded_at
-- inputs: raw.request_log
-- table: The connectors' request logs: one row per request or page group of a run, with rows, GA4 quality flags (thresholding, '(other)' row, sampling), quota and retries. From raw.request_log.
-- column run_id VARCHAR: Pipeline run that made the requests.
-- column source VARCHAR: 'ga4' or 'hubspot'.
-- column source_id VARCHAR: GA4 property id or HubSpot portal id.
-- column request VARCHAR: GA4 report spec or HubSpot object / endpoint.
-- column mode VARCHAR: 'full', 'incremental', 'lookback', 'archived' or 'metadata'.
-- column start_date DATE: First date requested (NULL when the request has no date range).
-- column end_date DATE: Last date requested.
-- column rows BIGINT: Rows received.
-- column pages BIGINT: Pages fetched.
-- column requests BIGINT: HTTP requests made (including retries).
-- column retries BIGINT: Retried requests.
-- column http_429 BIGINT: Responses with HTTP 429 (rate limited).
-- column splits BIGINT: Times a request was split (HubSpot search window split to stay under 10,000 results; GA4 split to avoid '(other)'/sampling).
-- column subject_to_thresholding BOOLEAN: GA4 reported data thresholding for this request.
-- column data_loss_from_other_row BOOLEAN: GA4 folded rows into '(other)' for this request.
-- column sampled BOOLEAN: GA4 sampled this request.
-- column has_quality_flag BOOLEAN: True if any of the three GA4 quality flags is set.
-- column quota_tokens_used BIGINT: GA4 quota tokens used.
-- column quota_tokens_remaining_hour BIGINT: GA4 property tokens left this hour after the request.
-- column quota_tokens_remaining_day BIGINT: GA4 property tokens left today after the request.
-- column wait_seconds DOUBLE: Seconds spent waiting on rate limits / backoff.
-- column started_at TIMESTAMP: Start of the request (UTC).
-- column finished_at TIMESTAMP: End of the request (UTC).
-- column duration_seconds DOUBLE: finished_at - started_at in seconds.
-- column error VARCHAR: Error message if the request failed; NULL if it succeeded.
-- column extra JSON: Any further fields the connector logged, as JSON.
-- column loaded_at TIMESTAMP: When the log entry was written (UTC).
SELECT run_id, source, source_id, request, mode,
    TRY_CAST(start_date AS DATE) AS start_date, TRY_CAST(end_date AS DATE) AS end_date,
    rows, pages, requests, retries, http_429, splits,
    subject_to_thresholding, data_loss_from_other_row, sampled,
    coalesce(subject_to_thresholding, false) OR coalesce(data_loss_from_other_row, false) OR coalesce(sampled, false)
        AS has_quality_flag,
    quota_tokens_used, quota_tokens_remaining_hour, quota_tokens_remaining_day, wait_seconds, started_at, finished_at,
    epoch(finished_at - started_at) AS duration_seconds, error, extra, _loaded_at AS loaded_at
FROM raw.request_log
