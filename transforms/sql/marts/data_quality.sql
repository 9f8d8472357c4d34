-- model: marts.data_quality
-- partition: full
-- table: The connectors' request logs: one row per request or page group of a run, with rows, GA4 quality flags (thresholding, '(other)' row, sampling), quota and retries. From raw.request_log.
-- column run_id: Pipeline run that made the requests.
-- column source: 'ga4' or 'hubspot'.
-- column source_id: GA4 property id or HubSpot portal id.
-- column request: GA4 report spec or HubSpot object / endpoint.
-- column mode: 'full', 'incremental', 'lookback', 'archived' or 'metadata'.
-- column start_date: First date requested (NULL when the request has no date range).
-- column end_date: Last date requested.
-- column rows: Rows received.
-- column pages: Pages fetched.
-- column requests: HTTP requests made (including retries).
-- column retries: Retried requests.
-- column http_429: Responses with HTTP 429 (rate limited).
-- column splits: Times a request was split (HubSpot search window split to stay under 10,000 results; GA4 split to avoid '(other)'/sampling).
-- column subject_to_thresholding: GA4 reported data thresholding for this request.
-- column data_loss_from_other_row: GA4 folded rows into '(other)' for this request.
-- column sampled: GA4 sampled this request.
-- column has_quality_flag: True if any of the three GA4 quality flags is set.
-- column quota_tokens_used: GA4 quota tokens used.
-- column quota_tokens_remaining_hour: GA4 property tokens left this hour after the request.
-- column quota_tokens_remaining_day: GA4 property tokens left today after the request.
-- column wait_seconds: Seconds spent waiting on rate limits / backoff.
-- column started_at: Start of the request (UTC).
-- column finished_at: End of the request (UTC).
-- column duration_seconds: finished_at - started_at in seconds.
-- column error: Error message if the request failed; NULL if it succeeded.
-- column extra: Any further fields the connector logged, as JSON.
-- column loaded_at: When the log entry was written (UTC).
SELECT run_id, source, source_id, request, mode,
    TRY_CAST(start_date AS DATE) AS start_date, TRY_CAST(end_date AS DATE) AS end_date,
    rows, pages, requests, retries, http_429, splits,
    subject_to_thresholding, data_loss_from_other_row, sampled,
    coalesce(subject_to_thresholding, false) OR coalesce(data_loss_from_other_row, false) OR coalesce(sampled, false)
        AS has_quality_flag,
    quota_tokens_used, quota_tokens_remaining_hour, quota_tokens_remaining_day, wait_seconds, started_at, finished_at,
    epoch(finished_at - started_at) AS duration_seconds, error, extra, _loaded_at AS loaded_at
FROM raw.request_log
