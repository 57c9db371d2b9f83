-- 015_denial_counts.sql: one eco_api_usage row may stand for several denied
-- calls. meterd coalesces the denials of one account, key, endpoint,
-- method, status and UTC day that it decides within one group commit into
-- one ledger event carrying their number (see docs/ARCHITECTURE.md,
-- "Coalesced denials"); the exporter writes it as one row whose `calls`
-- says how many calls it records. Every other row records one call, so the
-- column defaults to 1 and rows exported before this migration keep their
-- meaning. A separate file, not an edit of 005: applied migrations are
-- never changed.
--
-- Counting rule for readers of eco_api_usage: denied calls are
-- sum(calls) FILTER (WHERE decision = 'denied'), never count(*). Allowed
-- rows always have calls = 1, so count(*) of allowed rows stays right.

-- +goose Up
ALTER TABLE eco_api_usage ADD COLUMN IF NOT EXISTS calls bigint NOT NULL DEFAULT 1;

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'eco_api_usage_calls_check'
                   AND conrelid = 'eco_api_usage'::regclass) THEN
        ALTER TABLE eco_api_usage ADD CONSTRAINT eco_api_usage_calls_check
            CHECK (calls >= 1 AND (calls = 1 OR decision = 'denied'));
    END IF;
END
$$;
-- +goose StatementEnd

COMMENT ON COLUMN eco_api_usage.calls IS
    'Number of calls the row records: 1, or for a coalesced denial the number of denied calls it stands for. '
    'Count denied calls as sum(calls), not count(*).';

-- aggregate_daily_usage(date) as in 005, with denied_calls summing `calls`.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_daily_usage(p_date date)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    day_start timestamptz := p_date::timestamp AT TIME ZONE 'UTC';
    day_end   timestamptz := (p_date + 1)::timestamp AT TIME ZONE 'UTC';
    n         bigint;
BEGIN
    LOCK TABLE eco_usage_daily IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM eco_usage_endpoint_daily WHERE usage_date = p_date;
    DELETE FROM eco_usage_daily WHERE usage_date = p_date;

    INSERT INTO eco_usage_endpoint_daily (account_id, usage_date, endpoint, method,
        api_calls, overage_calls, denied_calls, errors, client_errors, latency_sum_us, latency_count)
    SELECT account_id, p_date, endpoint, method,
        count(*) FILTER (WHERE decision = 'allowed'),
        count(*) FILTER (WHERE decision = 'allowed' AND overage),
        coalesce(sum(calls) FILTER (WHERE decision = 'denied'), 0)::bigint,
        count(*) FILTER (WHERE decision = 'allowed' AND status_code >= 500),
        count(*) FILTER (WHERE decision = 'allowed' AND status_code BETWEEN 400 AND 499),
        coalesce(sum(response_time_ms * 1000) FILTER (WHERE decision = 'allowed'), 0)::bigint,
        count(response_time_ms) FILTER (WHERE decision = 'allowed')
    FROM eco_api_usage
    WHERE created_at >= day_start AND created_at < day_end
    GROUP BY account_id, endpoint, method
    ORDER BY account_id, endpoint, method;

    INSERT INTO eco_usage_daily (account_id, usage_date,
        api_calls, overage_calls, denied_calls, errors, client_errors, latency_sum_us, latency_count)
    SELECT account_id, p_date,
        sum(api_calls), sum(overage_calls), sum(denied_calls), sum(errors),
        sum(client_errors), sum(latency_sum_us), sum(latency_count)
    FROM eco_usage_endpoint_daily
    WHERE usage_date = p_date
    GROUP BY account_id
    ORDER BY account_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION aggregate_daily_usage(date) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('COMMENT ON FUNCTION aggregate_daily_usage(date) IS %L',
        'Rebuilds one UTC day of eco_usage_endpoint_daily and eco_usage_daily from eco_api_usage; '
        'denied_calls is sum(calls) of denied rows (a coalesced denial row records several calls).');
    EXECUTE format('COMMENT ON FUNCTION increment_api_calls(text, timestamptz, bigint) IS %L',
        'Adds p_n allowed calls to an account''s period counter in eco_api_call_counters and '
        'returns the new total. meterd''s exporter calls it for every exported allowed call (summed per '
        'batch, in the same transaction that inserts the calls into eco_api_usage), so the '
        'counter already holds every call meterd metered. An application must NOT call it as '
        'well: each call would then be counted twice. Read eco_api_call_counters instead. '
        'Denied calls, one per row or coalesced (eco_api_usage.calls > 1), are never added: they are not usage.');
END
$$;
-- +goose StatementEnd
