-- question: How well does each channel turn web visits into CRM contacts, and contacts into customers?
-- Over the whole window in the file: GA4 sessions and lead events next to the HubSpot contacts
-- created from them and the lifecycle stages entered in the same window (stage entries per contact
-- created, not a cohort rate). Rates are recomputed from the summed counts. Recent
-- contacts have had less time to progress, so the later-stage rates are lower bounds.
WITH totals AS (
    SELECT channel,
        min(date) AS first_date, max(date) AS last_date,
        sum(sessions)::BIGINT AS sessions,
        sum(leads)::BIGINT AS web_leads,
        sum(contacts_created)::BIGINT AS contacts_created,
        sum(mqls)::BIGINT AS mqls,
        sum(sqls)::BIGINT AS sqls,
        sum(opportunities)::BIGINT AS opportunities,
        sum(customers)::BIGINT AS customers,
        sum(deals_won)::BIGINT AS deals_won,
        round(sum(revenue), 2) AS revenue
    FROM marts.channel_funnel_daily
    WHERE channel IS NOT NULL
    GROUP BY channel
)
SELECT channel, first_date, last_date, sessions, web_leads, contacts_created, mqls, sqls, opportunities,
    customers, deals_won, revenue,
    round(1000.0 * contacts_created / nullif(sessions, 0), 2) AS contacts_per_1000_sessions,
    round(mqls / nullif(contacts_created, 0), 4) AS mqls_per_contact_created,
    round(customers / nullif(contacts_created, 0), 4) AS customers_per_contact_created,
    round(revenue / nullif(sessions, 0), 2) AS revenue_per_session
FROM totals
ORDER BY sessions DESC, channel;
