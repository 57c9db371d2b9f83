-- 006_billing_rules.sql: who may call increment_api_calls(), and a default
-- day for aggregate_daily_usage(). A separate file, not an edit of 005:
-- 005 is already applied in deployed databases and goose never reruns it.
-- Re-runnable by hand, like 005.

-- +goose Up

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('COMMENT ON FUNCTION increment_api_calls(text, timestamptz, bigint) IS %L',
        'Adds p_n allowed calls to an account''s period counter in eco_api_call_counters and '
        'returns the new total. meterd''s exporter calls it for every exported call (summed per '
        'batch, in the same transaction that inserts the calls into eco_api_usage), so the '
        'counter already holds every call meterd metered. An application must NOT call it as '
        'well: each call would then be counted twice. Read eco_api_call_counters instead.');
END
$$;
-- +goose StatementEnd

-- aggregate_daily_usage() with no argument rebuilds yesterday (UTC): the
-- day a nightly job wants once the day is over. It is a separate overload,
-- so aggregate_daily_usage(date) keeps its exact signature.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_daily_usage()
RETURNS bigint
LANGUAGE sql
AS $$
    SELECT aggregate_daily_usage(((now() AT TIME ZONE 'UTC')::date - 1));
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION aggregate_daily_usage() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('COMMENT ON FUNCTION aggregate_daily_usage() IS %L',
        'Rebuilds yesterday (UTC) in eco_usage_daily and eco_usage_endpoint_daily from eco_api_usage; '
        'see aggregate_daily_usage(date).');
END
$$;
-- +goose StatementEnd

-- No Down section: like 005, nothing here is removed automatically.
