-- 005_usage_tracking.sql: meterd's usage export, the tables and functions the
-- API's database gets from meterd. The number 005 is the name the API team
-- expects; meterd tracks it in its own version table (meterd_schema_version),
-- so it never collides with the API's own migrations.
--
-- Nothing here refers to any other table of the API's database: no foreign
-- keys to users or accounts, because meterd's accounts live in its ledger and
-- the API's tables may be named, or not exist, in any way.
--
-- Every statement is re-runnable (IF NOT EXISTS, OR REPLACE), so applying the
-- file again, by goose or by hand, changes nothing.
--
-- Conventions:
--   * Times are timestamptz; days are UTC calendar days (date columns).
--   * A call counts as usage only when allowed; denied calls (HTTP 429) are
--     recorded and counted apart, in denied_calls.
--   * errors are 5xx answers, client_errors 4xx, both of allowed calls.
--   * response_time_ms is exact to the microsecond (numeric(20,3) holds any
--     int64 of microseconds); NULL when the API reported no latency.
--     Aggregates keep latency in integer microseconds: latency_sum_us over
--     latency_count calls that reported one, so the mean is
--     latency_sum_us / latency_count / 1000.0 ms.

-- +goose Up

-- eco_api_usage: one row per metered call, written only by the exporter.
--
-- Volume plan: BRIN on created_at, not monthly range partitions. The export
-- is exactly-once because event_id is unique across the whole table, and a
-- partitioned table can only enforce uniqueness on keys that include the
-- partition column. Partitions would also need a job creating next month's
-- partition ahead of time, and a missing one stops the export. Rows arrive
-- in near time order (the ledger's commit order), which is what BRIN needs:
-- a (created_at) B-tree over hundreds of millions of rows costs gigabytes
-- and write amplification on every insert, the BRIN index a few hundred
-- kilobytes. Range scans by time use it; per-account queries use the
-- (account_id, created_at) B-tree. autosummarize keeps new block ranges
-- indexed without waiting for a manual brin_summarize_new_values().
--
-- Identifier columns use the "C" collation: they are ids and route
-- templates, compared byte for byte, never sorted for people. It makes
-- every B-tree comparison a memcmp (the libc collation costs several times
-- more per row on insert), and keeps the indexes valid across operating
-- system upgrades, which can change libc collation order and silently
-- corrupt text indexes.
CREATE TABLE IF NOT EXISTS eco_api_usage (
    event_id         text COLLATE "C" NOT NULL,
    account_id       text COLLATE "C" NOT NULL,
    key_id           text COLLATE "C",
    endpoint         text COLLATE "C" NOT NULL,
    method           text COLLATE "C" NOT NULL,
    status_code      integer,
    response_time_ms numeric(20,3),
    decision         text COLLATE "C" NOT NULL,
    overage          boolean          NOT NULL DEFAULT false,
    period_start     timestamptz      NOT NULL,
    created_at       timestamptz      NOT NULL,
    CONSTRAINT eco_api_usage_pkey PRIMARY KEY (event_id),
    CONSTRAINT eco_api_usage_decision_check CHECK (decision IN ('allowed', 'denied'))
);

COMMENT ON TABLE eco_api_usage IS
    'meterd: one row per metered API call; event_id is the ledger''s node id, a dash, and its sequence';

CREATE INDEX IF NOT EXISTS eco_api_usage_account_created_idx
    ON eco_api_usage (account_id, created_at);

CREATE INDEX IF NOT EXISTS eco_api_usage_created_brin
    ON eco_api_usage USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);

-- eco_usage_daily: one account's usage on one UTC day. The exporter adds
-- each batch's deltas; aggregate_daily_usage() rebuilds a day from
-- eco_api_usage. The aggregate tables are updated far more than inserted:
-- fillfactor 80 leaves room on each page for HOT updates, which skip the
-- index.
CREATE TABLE IF NOT EXISTS eco_usage_daily (
    account_id     text COLLATE "C" NOT NULL,
    usage_date     date   NOT NULL,
    api_calls      bigint NOT NULL DEFAULT 0,
    overage_calls  bigint NOT NULL DEFAULT 0,
    denied_calls   bigint NOT NULL DEFAULT 0,
    errors         bigint NOT NULL DEFAULT 0,
    client_errors  bigint NOT NULL DEFAULT 0,
    latency_sum_us bigint NOT NULL DEFAULT 0,
    latency_count  bigint NOT NULL DEFAULT 0,
    CONSTRAINT eco_usage_daily_pkey PRIMARY KEY (account_id, usage_date)
) WITH (fillfactor = 80);

-- eco_usage_endpoint_daily: the same totals per endpoint template and method.
-- Only writers that also write eco_usage_daily in the same transaction may
-- write it (see aggregate_daily_usage's lock).
CREATE TABLE IF NOT EXISTS eco_usage_endpoint_daily (
    account_id     text COLLATE "C" NOT NULL,
    usage_date     date   NOT NULL,
    endpoint       text COLLATE "C" NOT NULL,
    method         text COLLATE "C" NOT NULL,
    api_calls      bigint NOT NULL DEFAULT 0,
    overage_calls  bigint NOT NULL DEFAULT 0,
    denied_calls   bigint NOT NULL DEFAULT 0,
    errors         bigint NOT NULL DEFAULT 0,
    client_errors  bigint NOT NULL DEFAULT 0,
    latency_sum_us bigint NOT NULL DEFAULT 0,
    latency_count  bigint NOT NULL DEFAULT 0,
    CONSTRAINT eco_usage_endpoint_daily_pkey PRIMARY KEY (account_id, usage_date, endpoint, method)
) WITH (fillfactor = 80);

-- eco_api_call_counters: allowed calls per account and billing period,
-- maintained by increment_api_calls(). period_start is the start of the
-- account's billing period as meterd computed it (calendar month or
-- subscription anchor).
CREATE TABLE IF NOT EXISTS eco_api_call_counters (
    account_id   text COLLATE "C" NOT NULL,
    period_start timestamptz NOT NULL,
    api_calls    bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT eco_api_call_counters_pkey PRIMARY KEY (account_id, period_start)
) WITH (fillfactor = 80);

-- increment_api_calls adds n to an account's period counter and returns the
-- new total. A single INSERT ... ON CONFLICT DO UPDATE is atomic under
-- concurrency: concurrent callers on one row queue on its row lock and each
-- sees the previous caller's total.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION increment_api_calls(p_account_id text, p_period_start timestamptz, p_n bigint)
RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO eco_api_call_counters AS c (account_id, period_start, api_calls, updated_at)
    VALUES (p_account_id, p_period_start, p_n, now())
    ON CONFLICT (account_id, period_start)
    DO UPDATE SET api_calls = c.api_calls + EXCLUDED.api_calls, updated_at = EXCLUDED.updated_at
    RETURNING c.api_calls
$$;
-- +goose StatementEnd

-- aggregate_daily_usage rebuilds one UTC day of eco_usage_endpoint_daily and
-- eco_usage_daily from eco_api_usage and returns the number of daily rows.
-- Running it again gives the same rows.
--
-- The SHARE ROW EXCLUSIVE lock waits for export transactions that are
-- writing deltas (they hold ROW EXCLUSIVE on eco_usage_daily from before
-- their first insert until commit) and keeps new ones out until the rebuild
-- commits, so no delta is lost between the DELETE and the INSERT. Plain
-- reads are not blocked. Call it in a READ COMMITTED transaction (the
-- default): each statement then sees every export committed before the lock.
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
        count(*) FILTER (WHERE decision = 'denied'),
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

-- Pin the functions' search_path to the schema they were created in, so
-- they find their tables whatever search_path the caller has.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION increment_api_calls(text, timestamptz, bigint) SET search_path = %I, pg_temp',
        current_schema());
    EXECUTE format('ALTER FUNCTION aggregate_daily_usage(date) SET search_path = %I, pg_temp',
        current_schema());
END
$$;
-- +goose StatementEnd

-- No Down section: dropping billing data is never automatic.
